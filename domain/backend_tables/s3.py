"""S3's options and providers (rclone's backend/s3)."""

from __future__ import annotations

from domain.backend_decl import (
    BOOL,
    DESCRIPTION_OPTION,
    INT,
    MEMORY_POOL,
    NO_BUCKET_CREATION,
    SIZE,
    STRING,
    TRISTATE,
    BackendDecl,
    BackendOptionDecl,
    MiB,
    not_yet,
    unused,
)
from domain.options import NOT_YET

# rclone's provider names; each brings quirks (URL style, listing version).
S3_PROVIDERS = (
    "AWS",
    "Alibaba",
    "ArvanCloud",
    "Ceph",
    "ChinaMobile",
    "Cloudflare",
    "DigitalOcean",
    "Dreamhost",
    "GCS",
    "HuaweiOBS",
    "IBMCOS",
    "IDrive",
    "IONOS",
    "LyveCloud",
    "Leviia",
    "Liara",
    "Linode",
    "Magalu",
    "Minio",
    "Netease",
    "Outscale",
    "Petabox",
    "RackCorp",
    "Rclone",
    "Scaleway",
    "SeaweedFS",
    "Selectel",
    "StackPath",
    "Storj",
    "Synology",
    "TencentCOS",
    "Wasabi",
    "Qiniu",
    "Other",
)


S3 = BackendDecl(
    "s3",
    (
        BackendOptionDecl(
            "provider",
            STRING,
            "",
            "S3 implementation (AWS, Minio, Ceph, Other...); sets its quirks",
            choices=S3_PROVIDERS,
        ),
        BackendOptionDecl(
            "env_auth",
            BOOL,
            False,
            "Without keys, take credentials from the environment (AWS_* variables, "
            "shared credentials file, instance metadata) instead of going anonymous",
        ),
        BackendOptionDecl("access_key_id", STRING, "", "Access key ID (empty: see env_auth)"),
        BackendOptionDecl("secret_access_key", STRING, "", "Secret access key", secret=True),
        BackendOptionDecl(
            "session_token", STRING, "", "Session token of temporary credentials", secret=True
        ),
        BackendOptionDecl(
            "region", STRING, "", "Region to sign for (empty: found from the bucket on AWS)"
        ),
        BackendOptionDecl(
            "endpoint", STRING, "", "Endpoint of an S3-compatible server (empty: AWS)"
        ),
        unused("location_constraint", STRING, "", "Region of created buckets", NO_BUCKET_CREATION),
        BackendOptionDecl(
            "acl", STRING, "", "Canned ACL of new objects (empty: the bucket's default)"
        ),
        unused("bucket_acl", STRING, "", "Canned ACL of created buckets", NO_BUCKET_CREATION),
        BackendOptionDecl("requester_pays", BOOL, False, "Accept requester-pays charges"),
        BackendOptionDecl(
            "server_side_encryption",
            STRING,
            "",
            "Server-side encryption of new objects (AES256 or aws:kms)",
        ),
        not_yet("sse_customer_algorithm", STRING, "", "SSE-C algorithm"),
        BackendOptionDecl(
            "sse_customer_key", STRING, "", "SSE-C key", secret=True, support=NOT_YET
        ),
        BackendOptionDecl(
            "sse_customer_key_base64",
            STRING,
            "",
            "SSE-C key in base64",
            secret=True,
            support=NOT_YET,
        ),
        not_yet("sse_customer_key_md5", STRING, "", "MD5 of the SSE-C key"),
        BackendOptionDecl("sse_kms_key_id", STRING, "", "KMS key ID for aws:kms encryption"),
        BackendOptionDecl("storage_class", STRING, "", "Storage class of new objects"),
        not_yet("upload_cutoff", SIZE, 200 * MiB, "Size below which uploads are a single PUT"),
        BackendOptionDecl(
            "chunk_size",
            SIZE,
            5 * MiB,
            "Part size of uploads: smaller files are one PUT, larger ones a "
            "multipart upload streamed as they are written",
        ),
        BackendOptionDecl("max_upload_parts", INT, 10000, "Most parts in one multipart upload"),
        BackendOptionDecl(
            "copy_cutoff",
            SIZE,
            4999610368,
            "Server-side copies (renames) of larger objects use multipart copy in parts of this size",
        ),
        unused(
            "disable_checksum",
            BOOL,
            False,
            "Do not store the MD5 of large uploads in their metadata",
            "cloudvol stores no MD5 in object metadata",
        ),
        BackendOptionDecl(
            "shared_credentials_file", STRING, "", "AWS shared credentials file (env_auth)"
        ),
        BackendOptionDecl(
            "profile", STRING, "", "Profile in the shared credentials file (env_auth)"
        ),
        BackendOptionDecl("upload_concurrency", INT, 4, "Parts of one upload sent at once"),
        BackendOptionDecl(
            "force_path_style",
            BOOL,
            True,
            "Path-style URLs (host/bucket) instead of virtual-host ones (bucket.host); "
            "providers that need virtual-host style override it, as in rclone",
        ),
        not_yet("v2_auth", BOOL, False, "Sign requests with AWS signature v2"),
        not_yet("use_accelerate_endpoint", BOOL, False, "Use the AWS S3 accelerated endpoint"),
        not_yet("leave_parts_on_error", BOOL, False, "Keep the parts of a failed multipart upload"),
        BackendOptionDecl("list_chunk", INT, 1000, "Keys asked for per listing request"),
        BackendOptionDecl(
            "list_version", INT, 0, "ListObjects version: 1, 2, or 0 for the provider's"
        ),
        not_yet(
            "list_url_encode", TRISTATE, None, "URL-encode listings (unset: the provider's way)"
        ),
        unused(
            "no_check_bucket",
            BOOL,
            False,
            "Do not check or create the bucket before uploads",
            NO_BUCKET_CREATION,
        ),
        unused(
            "no_head",
            BOOL,
            False,
            "Do not read an object's metadata back after uploading it",
            "cloudvol never reads an object back after uploading it",
        ),
        not_yet(
            "no_head_object", BOOL, False, "Do not read an object's metadata before reading it"
        ),
        not_yet("encoding", STRING, "Slash,InvalidUtf8,Dot", "Encoding of object names"),
        *MEMORY_POOL,
        unused(
            "disable_http2",
            BOOL,
            False,
            "Disable HTTP/2",
            "cloudvol's S3 client speaks HTTP/1.1 only",
        ),
        not_yet("download_url", STRING, "", "Custom URL to download objects from"),
        not_yet("use_multipart_etag", TRISTATE, None, "Check multipart uploads by their ETag"),
        not_yet(
            "use_presigned_request", BOOL, False, "Upload single parts with presigned requests"
        ),
        not_yet("versions", BOOL, False, "Show old object versions"),
        not_yet("version_at", STRING, "off", "Show the objects as they were at this time"),
        not_yet("decompress", BOOL, False, "Decompress gzip-encoded objects when reading"),
        not_yet("might_gzip", TRISTATE, None, "Objects may be gzip-encoded by the server"),
        not_yet("no_system_metadata", BOOL, False, "Neither read nor write system metadata"),
        DESCRIPTION_OPTION,
    ),
    bucket_in_path=True,
)
