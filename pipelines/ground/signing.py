"""Standard Webhooks signatures (symmetric, ``v1``): sign on the ground, verify at the consumer.

Spec: https://www.standardwebhooks.com (v1.0.0). The signed content is
``{webhook-id}.{webhook-timestamp}.{body}``; the key is the base64 part of a ``whsec_`` secret;
the ``webhook-signature`` header is a space-delimited list of ``v1,<base64 HMAC-SHA256>`` so that
a secret can be rotated without downtime (sign with old and new, the consumer accepts either).

Why the ``standardwebhooks`` package (by the spec's authors) computes and matches signatures:
the signed-content layout, the ``v1`` list and the constant-time comparison are then the
reference implementation's, not a copy of it. What stays here, each because the package (1.1.0)
cannot do it: strict secret decoding, webhook-id validation, a configurable replay tolerance
against an injectable clock, several secrets per side, secret generation, and our own errors.
"""

from __future__ import annotations

import base64
import binascii
import secrets as _secrets
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from standardwebhooks import Webhook, WebhookVerificationError

from pipelines.errors import SubscriberError, WebhookSignatureError, WebhookTimestampError

SECRET_PREFIX = "whsec_"
#: The spec asks for at least 24 random bytes (and at most 64); 32 is what we generate.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
DEFAULT_TOLERANCE_S = 300.0


class _Webhook(Webhook):
    """``standardwebhooks.Webhook`` whose own timestamp check is replaced by ``verify``'s.

    Why: the package hard-codes a 5-minute tolerance against ``datetime.now()`` in the private
    ``Webhook.__verify_timestamp`` and offers no option; our consumers configure the tolerance
    and tests inject the clock. Overriding the (name-mangled) hook keeps the package's header
    parsing and signature matching. tests/test_ground_signing.py verifies 2021 reference vectors,
    so it fails loudly if a package release renames the hook and the wall-clock check comes back.
    """

    def _Webhook__verify_timestamp(self, timestamp_header: str) -> datetime:
        # Already checked (integer, inside the tolerance) by verify() before this is reached.
        return datetime.fromtimestamp(int(timestamp_header), tz=timezone.utc)


def generate_secret(nbytes: int = 32) -> str:
    """A fresh ``whsec_`` secret from the OS CSPRNG; unique per subscriber, as the spec asks.

    Hand-written: the package has no secret generator.
    """
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise SubscriberError(f"secret length must be {MIN_SECRET_BYTES}..{MAX_SECRET_BYTES} bytes, got {nbytes}")
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(nbytes)).decode("ascii")


def secret_key(secret: str | bytes) -> bytes:
    """HMAC key of a secret: the base64-decoded part after ``whsec_`` (raw bytes pass through).

    The prefix is optional on input because other implementations hand secrets out bare.
    Missing base64 padding is tolerated for the same reason. Hand-written because the package
    decodes non-strictly: it drops characters outside the base64 alphabet, so a mistyped secret
    would silently become a different key instead of an error.
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
    # The spec: ids must not contain '.', or "{id}.{ts}.{body}" becomes ambiguous. The package
    # does not check ids.
    if not msg_id or "." in msg_id or any(c.isspace() for c in msg_id):
        raise WebhookSignatureError(f"invalid webhook-id {msg_id!r}")


def _text(body: bytes) -> str:
    # The package signs and verifies str payloads (it encodes them as UTF-8); webhook bodies are JSON.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookSignatureError("webhook body is not UTF-8 (Standard Webhooks payloads are JSON)") from exc


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one secret: ``v1,<base64>``."""
    _check_id(msg_id)
    when = datetime.fromtimestamp(int(timestamp), tz=timezone.utc)
    return _Webhook(secret_key(secret)).sign(msg_id, when, _text(body))


def webhook_headers(secrets_: Iterable[str | bytes], msg_id: str, body: bytes,
                    timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers; several secrets give several signatures (rotation).

    Hand-written: the package signs with one secret and does not build headers.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    sigs = " ".join(sign(s, msg_id, ts, body) for s in secrets_)
    if not sigs:
        raise SubscriberError("at least one secret is needed to sign a webhook")
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sigs}


def verify(secrets_: Iterable[str | bytes], headers: Mapping[str, str], body: bytes,
           tolerance_s: float = DEFAULT_TOLERANCE_S, now: float | None = None) -> tuple[str, int]:
    """Check a received webhook; return ``(webhook_id, timestamp)`` or raise WebhookSignatureError.

    Rejects missing headers, a timestamp outside ``now ± tolerance_s`` (replays of captured
    requests; WebhookTimestampError), and any body/id/timestamp that no ``v1`` signature covers.
    The package matches signatures constant-time (hmac.compare_digest), so the consumer cannot
    be used as a signing oracle; signatures of other schemes (``v1a``...) are skipped. A
    malformed entry in the signature list (no comma, broken base64) rejects the whole header.
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
    hooks = [_Webhook(secret_key(s)) for s in secrets_]
    if not hooks:
        raise SubscriberError("at least one secret is needed to verify a webhook")
    text = _text(body)
    # The package splits the list on single spaces: collapse runs and trim the ends first.
    clean = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": " ".join(sig_header.split())}
    for hook in hooks:  # one secret per Webhook: try each (rotation on the consumer's side)
        try:
            hook.verify(text, clean, json_parse=False)
        except WebhookVerificationError:
            continue  # no v1 signature made with this secret
        except ValueError as exc:  # binascii.Error, unpacking: the package parses strictly
            raise WebhookSignatureError(f"malformed webhook-signature header: {exc}") from exc
        return msg_id, ts
    raise WebhookSignatureError("no matching v1 signature")
