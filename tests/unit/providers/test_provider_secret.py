"""A provider's secret: the JSON document, old bare-key secrets, and redaction of botocore's wire logs."""

from __future__ import annotations

import json
import logging

import pytest

from parley.domain.errors import ProviderError
from parley.storage.secrets import ProviderSecret, RedactSecrets

KEY = "sk-live-supersecret-key-1234"
HEADER = 'goog-"quoted\\-0123456789'


def test_the_document_round_trips_and_its_repr_shows_no_value() -> None:
    secret = ProviderSecret(api_key=KEY, headers={"X-Goog-Api-Key": HEADER})
    assert ProviderSecret.decode(secret.encode()) == secret
    assert KEY not in repr(secret)
    assert HEADER not in repr(secret)
    assert ProviderSecret().empty
    assert not ProviderSecret(headers={"X-A": "b"}).empty


@pytest.mark.parametrize("old", [KEY, "{not json at all", '{"api_key": "looks like a document but is a key"}'])
def test_secrets_written_before_headers_moved_read_as_a_bare_key(old: str) -> None:
    assert ProviderSecret.decode(old) == ProviderSecret(api_key=old)


def test_a_document_of_the_wrong_shape_is_a_provider_error() -> None:
    broken = json.dumps({"format": "parley.provider-secret/1", "api_key": 5, "headers": {}})
    with pytest.raises(ProviderError) as info:
        ProviderSecret.decode(broken)
    assert info.value.code == "provider_key_unavailable"


def _logged(message: str, *args: object) -> str:
    record = logging.LogRecord("botocore.endpoint", logging.DEBUG, __file__, 1, message, args, None)
    RedactSecrets().filter(record)
    return record.getMessage()


def test_the_wire_log_filter_redacts_a_json_secret_at_every_escaping_level() -> None:
    value = ProviderSecret(api_key=KEY, headers={"X-Goog-Api-Key": HEADER}).encode()
    body = json.dumps({"Name": "parley/prod/p/providers/aip_1", "SecretString": value, "Description": "d"})
    for text in (body, repr({"body": body}), repr({"body": body.encode()})):
        logged = _logged("Making request for OperationModel with params: %s", text)
        assert KEY not in logged
        assert "0123456789" not in logged
        assert "[REDACTED]" in logged
        assert "parley/prod/p/providers/aip_1" in logged  # the name stays, for debugging
