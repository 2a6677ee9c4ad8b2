"""The one secret list (domain.backends.is_secret_option): declared options
by their `secret` flag, undeclared ones by their words; every redactor uses it."""

from __future__ import annotations

import pytest

from adapters.http.redact import redact_options
from domain.backends import is_secret_option


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("pass", True),
        ("sftp-pass", True),
        ("key_pem", True),
        ("S3_SECRET_ACCESS_KEY", True),
        ("s3-session-token", True),
        ("sse_customer_key", True),
        ("key_file", False),  # a path, declared not secret
        ("access_key_id", False),
        ("s3-access-key-id", False),
        ("host", False),
        ("password", True),  # undeclared (an fsspec parameter): judged by its words
        ("token", True),
        ("account_key", True),
        ("sas_token", True),
        ("global_store", False),
    ],
)
def test_one_secret_list(key: str, secret: bool) -> None:
    assert is_secret_option(key) is secret


def test_every_redactor_uses_the_secret_list() -> None:
    assert redact_options({"sftp-key-pem": "PEM", "sftp-key-file": "/k"}) == {
        "sftp-key-pem": "***",
        "sftp-key-file": "/k",
    }


def test_redacting_a_long_value_takes_linear_time() -> None:
    # Found by the hostile-input tests: a 100 KB option value took minutes.
    import time

    start = time.process_time()
    redact_options({"remote": "h" * 1_000_000 + ",pass=x"})
    assert time.process_time() - start < 5  # quadratic time would be hours
    assert redact_options({"remote": ":sftp,host=h" + "h" * 10 + ",pass=x:/p"}) == {
        "remote": ":sftp,host=hhhhhhhhhhh,pass=***:/p"
    }


def test_secrets_of_a_remote_inside_a_remote_are_redacted() -> None:
    crypt = ":crypt,remote=':sftp,host=h,pass=SFTPSECRET:/srv',password=CRYPTSECRET:"
    redacted = redact_options({"remote": crypt, "crypt-remote": ":webdav,pass='X,Y':"})
    assert "SFTPSECRET" not in redacted["remote"] and "CRYPTSECRET" not in redacted["remote"]
    assert "host=h" in redacted["remote"]
    assert "X,Y" not in redacted["crypt-remote"]
    for key in ("crypt-password", "crypt-password2", "azureblob-key", "azureblob-sas-url"):
        assert is_secret_option(key), key
