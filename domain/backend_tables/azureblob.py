"""Azure Blob Storage's options (rclone's backend/azureblob)."""

from __future__ import annotations

from domain.backend_decl import (
    BOOL,
    DESCRIPTION_OPTION,
    INT,
    MEMORY_POOL,
    SIZE,
    STRING,
    BackendDecl,
    BackendOptionDecl,
    MiB,
    not_yet,
)
from domain.options import NOT_YET

AZUREBLOB = BackendDecl(
    "azureblob",
    (
        BackendOptionDecl("account", STRING, "", "Storage account name"),
        BackendOptionDecl("key", STRING, "", "Storage account shared key", secret=True),
        BackendOptionDecl("sas_url", STRING, "", "SAS URL of a container", secret=True),
        BackendOptionDecl(
            "endpoint", STRING, "", "Blob service endpoint (empty: the account's on Azure)"
        ),
        not_yet("env_auth", BOOL, False, "Take credentials from the environment"),
        not_yet("tenant", STRING, "", "Service principal's tenant ID"),
        not_yet("client_id", STRING, "", "Service principal's client ID"),
        BackendOptionDecl(
            "client_secret", STRING, "", "Service principal's secret", secret=True, support=NOT_YET
        ),
        not_yet("client_certificate_path", STRING, "", "Service principal's certificate"),
        not_yet("use_msi", BOOL, False, "Use a managed service identity"),
        not_yet("use_emulator", BOOL, False, "Use the local storage emulator's well-known account"),
        not_yet("upload_cutoff", SIZE, 0, "Size below which uploads are a single PUT"),
        not_yet("chunk_size", SIZE, 4 * MiB, "Upload block size"),
        not_yet("upload_concurrency", INT, 16, "Blocks of one upload sent at once"),
        not_yet("list_chunk", INT, 5000, "Blobs asked for per listing request"),
        not_yet("access_tier", STRING, "", "Access tier of new blobs"),
        not_yet("archive_tier_delete", BOOL, False, "Delete archive-tier blobs before overwriting"),
        not_yet("disable_checksum", BOOL, False, "Do not store MD5 checksums"),
        *MEMORY_POOL,
        not_yet("encoding", STRING, "", "Encoding of blob names"),
        not_yet("public_access", STRING, "", "Public access level of created containers"),
        not_yet("no_check_container", BOOL, False, "Do not check or create the container"),
        not_yet("no_head_object", BOOL, False, "Do not read a blob's properties before reading it"),
        DESCRIPTION_OPTION,
    ),
    # The container is the path's first segment, unless sas_url names it: the
    # adapter checks.
)
