"""Standard Webhooks signing and verification, including the spec libraries' reference vector."""

from __future__ import annotations

import base64

import pytest

from pipelines.errors import SubscriberError, WebhookSignatureError, WebhookTimestampError
from pipelines.ground.signing import generate_secret, secret_key, sign, verify, webhook_headers

# From standard-webhooks/standard-webhooks libraries/python/tests/test_webhooks.py (test_sign_function).
REF_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REF_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
REF_TS = 1614265330
REF_BODY = b'{"test": 2432232314}'
REF_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def ref_headers() -> dict[str, str]:
    return {"webhook-id": REF_ID, "webhook-timestamp": str(REF_TS), "webhook-signature": REF_SIG}


def test_reference_vector_signs_identically() -> None:
    assert sign(REF_SECRET, REF_ID, REF_TS, REF_BODY) == REF_SIG
    # The prefix is optional on input, as in the reference libraries.
    assert sign(REF_SECRET.removeprefix("whsec_"), REF_ID, REF_TS, REF_BODY) == REF_SIG


def test_reference_vector_verifies_within_tolerance() -> None:
    assert verify([REF_SECRET], ref_headers(), REF_BODY, now=REF_TS + 299) == (REF_ID, REF_TS)
    # Header names are case-insensitive (HTTP).
    upper = {k.upper(): v for k, v in ref_headers().items()}
    assert verify([REF_SECRET], upper, REF_BODY, now=REF_TS) == (REF_ID, REF_TS)


@pytest.mark.parametrize("field,value", [
    ("body", b'{"test": 2432232315}'),
    ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJeK"),
    ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="),  # the spec tests' bad sig
    ("webhook-signature", "v2," + REF_SIG[3:]),  # right bytes, unknown version
    ("webhook-signature", "v1,not-base64!"),
])
def test_tampering_is_rejected(field: str, value: object) -> None:
    headers, body = ref_headers(), REF_BODY
    if field == "body":
        body = value  # type: ignore[assignment]
    else:
        headers[field] = value  # type: ignore[assignment]
    with pytest.raises(WebhookSignatureError):
        verify([REF_SECRET], headers, body, now=REF_TS)


def test_changed_timestamp_breaks_the_signature() -> None:
    headers = ref_headers()
    headers["webhook-timestamp"] = str(REF_TS + 1)
    with pytest.raises(WebhookSignatureError) as exc:
        verify([REF_SECRET], headers, REF_BODY, now=REF_TS)
    assert not isinstance(exc.value, WebhookTimestampError)


@pytest.mark.parametrize("now", [REF_TS + 301, REF_TS - 301])
def test_timestamp_outside_tolerance_is_rejected(now: int) -> None:
    with pytest.raises(WebhookTimestampError):
        verify([REF_SECRET], ref_headers(), REF_BODY, now=now)


def test_custom_tolerance() -> None:
    with pytest.raises(WebhookTimestampError):
        verify([REF_SECRET], ref_headers(), REF_BODY, tolerance_s=10, now=REF_TS + 11)
    verify([REF_SECRET], ref_headers(), REF_BODY, tolerance_s=10, now=REF_TS + 10)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected(missing: str) -> None:
    headers = ref_headers()
    del headers[missing]
    with pytest.raises(WebhookSignatureError):
        verify([REF_SECRET], headers, REF_BODY, now=REF_TS)


def test_malformed_timestamp_and_id_are_rejected() -> None:
    headers = ref_headers()
    headers["webhook-timestamp"] = "hello"
    with pytest.raises(WebhookTimestampError):
        verify([REF_SECRET], headers, REF_BODY, now=REF_TS)
    with pytest.raises(WebhookSignatureError):
        sign(REF_SECRET, "msg.with.dots", REF_TS, REF_BODY)


def test_rotation_several_signatures_and_several_secrets() -> None:
    new = generate_secret()
    # Sender signs with old and new secret: a consumer knowing either accepts.
    h = webhook_headers([REF_SECRET, new], REF_ID, REF_BODY, timestamp=REF_TS)
    assert len(h["webhook-signature"].split()) == 2
    verify([new], h, REF_BODY, now=REF_TS)
    verify([REF_SECRET], h, REF_BODY, now=REF_TS)
    # Consumer knowing both secrets accepts a message signed with only one of them.
    h1 = webhook_headers([new], REF_ID, REF_BODY, timestamp=REF_TS)
    verify([REF_SECRET, new], h1, REF_BODY, now=REF_TS)
    with pytest.raises(WebhookSignatureError):
        verify([generate_secret()], h1, REF_BODY, now=REF_TS)
    # Unknown schemes in the list are skipped, not fatal.
    h1["webhook-signature"] = "v1a,AAAA " + h1["webhook-signature"]
    verify([new], h1, REF_BODY, now=REF_TS)


def test_generated_secrets_are_prefixed_random_and_long_enough() -> None:
    a, b = generate_secret(), generate_secret()
    assert a.startswith("whsec_") and a != b
    assert len(base64.b64decode(a[6:])) == 32
    assert len(secret_key(generate_secret(24))) == 24
    with pytest.raises(SubscriberError):
        generate_secret(16)


def test_bad_secrets_are_rejected() -> None:
    with pytest.raises(SubscriberError):
        secret_key("whsec_***not base64***")
    with pytest.raises(SubscriberError):
        secret_key("whsec_")
    with pytest.raises(SubscriberError):
        verify([], ref_headers(), REF_BODY, now=REF_TS)
    with pytest.raises(SubscriberError):
        webhook_headers([], REF_ID, REF_BODY)


def test_package_still_has_the_timestamp_hook_we_override() -> None:
    # signing._Webhook replaces standardwebhooks' private, wall-clock 5-minute check; if a release
    # renames it, the override would silently stop applying (and the reference tests would fail).
    from standardwebhooks import Webhook

    assert callable(getattr(Webhook, "_Webhook__verify_timestamp", None))


def test_signatures_interoperate_with_the_reference_package() -> None:
    from datetime import datetime, timezone

    from standardwebhooks import Webhook

    ref = Webhook(REF_SECRET).sign(REF_ID, datetime.fromtimestamp(REF_TS, tz=timezone.utc), REF_BODY.decode())
    assert ref == REF_SIG == webhook_headers([REF_SECRET], REF_ID, REF_BODY, timestamp=REF_TS)["webhook-signature"]


def test_signature_list_whitespace_and_malformed_entries() -> None:
    headers = ref_headers()
    headers["webhook-signature"] = f"  v1a,AAAA   {REF_SIG}  "  # runs of spaces are tolerated
    assert verify([REF_SECRET], headers, REF_BODY, now=REF_TS) == (REF_ID, REF_TS)
    for bad in (f"v1,AAA {REF_SIG}", f"garbage {REF_SIG}"):  # a malformed entry rejects the header
        headers["webhook-signature"] = bad
        with pytest.raises(WebhookSignatureError, match="malformed"):
            verify([REF_SECRET], headers, REF_BODY, now=REF_TS)


def test_non_utf8_bodies_and_loose_secrets_are_our_errors() -> None:
    with pytest.raises(WebhookSignatureError):
        sign(REF_SECRET, REF_ID, REF_TS, b"\xff\xfe")
    with pytest.raises(WebhookSignatureError):
        verify([REF_SECRET], ref_headers(), b"\xff\xfe", now=REF_TS)
    # The package would drop the space and sign with a different key; we refuse the secret.
    with pytest.raises(SubscriberError):
        secret_key(REF_SECRET[:20] + " " + REF_SECRET[20:])
