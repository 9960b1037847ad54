"""Parley's Standard Webhooks signer against the spec's own library (`standardwebhooks`)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from parley.domain import signatures
from parley.domain.webhooks import SECRET_PREFIX
from parley.storage.webhooks import WebhookSecret

BODY = json.dumps({"id": "evt_01JZ00000000000000000000AA", "type": "webhook.test", "data": {"x": "é ✓"}})


def test_a_new_secret_is_whsec_and_base64_of_32_random_bytes() -> None:
    secret = signatures.new_secret()
    assert secret.startswith(SECRET_PREFIX)
    assert len(base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)) == 32
    assert signatures.new_secret() != secret


@pytest.mark.parametrize("timestamp", [0, 1674087231, 1795456800])
def test_our_signature_bytes_equal_the_librarys(timestamp: int) -> None:
    secret = signatures.new_secret()
    ours = signatures.sign(secret, "evt_01JZ00000000000000000000AA", timestamp, BODY)
    theirs = Webhook(secret).sign("evt_01JZ00000000000000000000AA", datetime.fromtimestamp(timestamp, UTC), BODY)
    assert ours == theirs
    assert ours.startswith("v1,")


def test_the_spec_example_secret_signs_as_the_library_does() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the libraries' test vector secret
    body = '{"test": 2432232314}'
    ours = signatures.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert ours == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert ours == Webhook(secret).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", datetime.fromtimestamp(1614265330, UTC), body)


def test_the_library_verifies_our_headers_with_either_secret_of_a_rotation() -> None:
    new, old = signatures.new_secret(), signatures.new_secret()
    now = int(datetime.now(UTC).timestamp())
    headers = signatures.headers([new, old], "evt_01JZ00000000000000000000AA", now, BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(BODY, headers) == json.loads(BODY)
    assert Webhook(old).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(signatures.new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(BODY + " ", headers)  # one byte more: no longer the signed body


def test_ids_with_a_full_stop_and_foreign_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match=r"may not contain '\.'"):
        signatures.sign(signatures.new_secret(), "evt.1", 1, BODY)
    with pytest.raises(ValueError, match="whsec_"):
        signatures.sign("sk-not-a-webhook-secret", "evt_1", 1, BODY)
    with pytest.raises(ValueError, match="at least one"):
        signatures.headers([], "evt_1", 1, BODY)


def test_the_previous_secret_signs_only_until_its_grace_ends() -> None:
    stored = WebhookSecret(current="whsec_new", previous="whsec_old", previous_until="2026-12-03T12:00:00.000Z")
    assert stored.signing("2026-12-03T11:59:59.999Z") == ["whsec_new", "whsec_old"]
    assert stored.signing("2026-12-03T12:00:00.000Z") == ["whsec_new"]
    assert WebhookSecret.decode(stored.encode()) == stored
    assert "whsec" not in repr(stored)
