"""S3 error codes in the port's terms: a missing key is ENOENT, a missing bucket,
refused credentials or a wrong region make the remote unavailable (with what to
do about it), throttling is EAGAIN; anything else as storage_common maps it."""

from __future__ import annotations

import errno
from collections.abc import Iterable

from adapters.storage.s3_client import client_error, is_missing_credentials
from adapters.storage.storage_common import in_port_form, port_error, redact
from domain.errors import OptionError, RemoteUnavailable

_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidClientTokenId",
        "AuthorizationHeaderMalformed",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload"})
_DENIED_CODES = frozenset({"AccessDenied", "403", "AllAccessDisabled", "AccountProblem"})
_REDIRECT_CODES = frozenset({"PermanentRedirect", "301", "IllegalLocationConstraintException"})


def s3_error(
    exc: BaseException, path: str, *, label: str, bucket: str, secrets: Iterable[str]
) -> BaseException:
    """The port's form of an exception from an S3 request about `path`."""
    if isinstance(exc, RemoteUnavailable | OptionError) or in_port_form(exc):
        return exc
    client = client_error(exc)
    if client is None:
        if is_missing_credentials(exc):
            return RemoteUnavailable(
                f"{label}: no credentials found (env_auth is on and neither "
                "AWS_* variables nor a shared credentials file provide them)"
            )
        return port_error(exc, path, label, secrets)
    code, message = client
    message = redact(message, secrets)
    if code in _NOT_FOUND_CODES:
        return FileNotFoundError(errno.ENOENT, "no such file or directory", path)
    if code == "NoSuchBucket":
        return RemoteUnavailable(f'{label}: bucket "{bucket}" does not exist ({message})')
    if code in _CREDENTIAL_CODES:
        return RemoteUnavailable(f"{label}: credentials refused: {message} ({code})")
    if code in _REDIRECT_CODES:
        return RemoteUnavailable(
            f'{label}: bucket "{bucket}" is in another region; set s3-region ({message})'
        )
    if code in _DENIED_CODES:
        return PermissionError(errno.EACCES, f"{message} ({code})", path)
    if code in ("SlowDown", "503", "ServiceUnavailable"):
        return OSError(errno.EAGAIN, f"{message} ({code})", path)
    if code in ("EntityTooLarge", "EntityTooSmall"):
        return OSError(errno.EFBIG, f"{message} ({code})", path)
    return OSError(errno.EIO, f"{message} ({code})", path)
