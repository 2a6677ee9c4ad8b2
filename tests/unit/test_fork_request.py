"""The fork server's request: the job travels as text, the backends to preload as
a list; anything else is refused before a fork."""

from __future__ import annotations

import pytest

from adapters.mounting.fork_server import decode_request, encode_request


def test_a_request_carries_the_job_and_the_backends_to_preload() -> None:
    job = b'{"name": "vol", "options": {"sftp-host": "h\\u00e9"}}'
    request = decode_request(encode_request(job, ("sftp", "s3")))
    assert request.job == job
    assert request.preload == ("sftp", "s3")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"preload": []}', "without a job"),
        (b"[1, 2]", "without a job"),
        (b'{"job": "{}", "preload": "sftp"}', "preload must be a list"),
        (b'{"job": "{}", "preload": [1]}', "preload must be a list"),
    ],
)
def test_a_malformed_request_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_request(data)


def test_a_request_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValueError):
        decode_request(b"not json")
