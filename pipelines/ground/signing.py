"""Standard Webhooks signatures (symmetric, ``v1``): sign on the ground, verify at the consumer.

Spec: https://www.standardwebhooks.com (v1.0.0). The signed content is
``{webhook-id}.{webhook-timestamp}.{body}``; the key is the base64 part of a ``whsec_`` secret;
the ``webhook-signature`` header is a space-delimited list of ``v1,<base64 HMAC-SHA256>`` so that
a secret can be rotated without downtime (sign with old and new, the consumer accepts either).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Iterable, Mapping

from pipelines.errors import SubscriberError, WebhookSignatureError, WebhookTimestampError

SECRET_PREFIX = "whsec_"
#: The spec asks for at least 24 random bytes (and at most 64); 32 is what we generate.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
DEFAULT_TOLERANCE_S = 300.0


def generate_secret(nbytes: int = 32) -> str:
    """A fresh ``whsec_`` secret from the OS CSPRNG; unique per subscriber, as the spec asks."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise SubscriberError(f"secret length must be {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES} bytes, got {nbytes}")
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(nbytes)).decode("ascii")


def secret_key(secret: str | bytes) -> bytes:
    """HMAC key of a secret: the base64-decoded part after ``whsec_`` (raw bytes pass through).

    The prefix is optional on input because other implementations hand secrets out bare.
    Missing base64 padding is tolerated for the same reason.
    """
    if isinstance(secret, bytes):
        key = secret
    else:
        body = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
        try:
            key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SubscriberError(f"webhook secret is not base64 after '{SECRET_PREFIX}'") from exc
    if not key:
        raise SubscriberError("webhook secret may not be empty")
    return key


def _check_id(msg_id: str) -> None:
    # The spec: ids must not contain '.', or "{id}.{ts}.{body}" becomes ambiguous.
    if not msg_id or "." in msg_id or any(c.isspace() for c in msg_id):
        raise WebhookSignatureError(f"invalid webhook-id {msg_id!r}")


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    """Raw HMAC-SHA256 over ``{id}.{timestamp}.{body}``."""
    _check_id(msg_id)
    return hmac.new(key, b"%s.%d.%s" % (msg_id.encode(), int(timestamp), body), hashlib.sha256).digest()


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one secret: ``v1,<base64>``."""
    sig = signature(secret_key(secret), msg_id, timestamp, body)
    return "v1," + base64.b64encode(sig).decode("ascii")


def webhook_headers(secrets_: Iterable[str | bytes], msg_id: str, body: bytes,
                    timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers; several secrets give several signatures (rotation)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    sigs = " ".join(sign(s, msg_id, ts, body) for s in secrets_)
    if not sigs:
        raise SubscriberError("at least one secret is needed to sign a webhook")
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sigs}


def verify(secrets_: Iterable[str | bytes], headers: Mapping[str, str], body: bytes,
           tolerance_s: float = DEFAULT_TOLERANCE_S, now: float | None = None) -> tuple[str, int]:
    """Check a received webhook; return ``(webhook_id, timestamp)`` or raise WebhookSignatureError.

    Rejects missing headers, a timestamp outside ``now ± tolerance_s`` (replays of captured
    requests), and any body/id/timestamp that no ``v1`` signature covers. Comparison is
    constant-time (hmac.compare_digest) so the consumer cannot be used as a signing oracle.
    """
    low = {k.lower(): v for k, v in headers.items()}
    msg_id, ts_raw, sig_header = low.get("webhook-id"), low.get("webhook-timestamp"), low.get("webhook-signature")
    if not (msg_id and ts_raw and sig_header):
        raise WebhookSignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    _check_id(msg_id)
    try:
        ts = int(ts_raw.strip())
    except ValueError as exc:
        raise WebhookTimestampError(f"webhook-timestamp is not an integer: {ts_raw!r}") from exc
    current = time.time() if now is None else now
    if ts < current - tolerance_s:
        raise WebhookTimestampError(f"webhook-timestamp {ts} is too old (tolerance {tolerance_s:g} s)")
    if ts > current + tolerance_s:
        raise WebhookTimestampError(f"webhook-timestamp {ts} is too far in the future (tolerance {tolerance_s:g} s)")
    keys = [secret_key(s) for s in secrets_]
    if not keys:
        raise SubscriberError("at least one secret is needed to verify a webhook")
    expected = [signature(k, msg_id, ts, body) for k in keys]
    for item in sig_header.split():
        version, _, b64 = item.partition(",")
        if version != "v1" or not b64:
            continue  # other schemes (v1a, future versions) are not ours to judge
        try:
            got = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Compare against every expected signature without short-circuiting on the first key.
        ok = False
        for exp in expected:
            ok |= hmac.compare_digest(exp, got)
        if ok:
            return msg_id, ts
    raise WebhookSignatureError("no matching v1 signature")
