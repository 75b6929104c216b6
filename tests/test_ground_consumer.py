"""The reference consumer over real HTTP on 127.0.0.1: verification, replays, idempotency, storage."""

from __future__ import annotations

import json
import time
from pathlib import Path
from collections.abc import Iterator

import httpx
import pytest

from pipelines.errors import GroundError
from pipelines.ground.consumer import WebhookConsumer
from pipelines.ground.signing import generate_secret, webhook_headers

SECRET = generate_secret()
BODY = json.dumps({"type": "alert.fire", "timestamp": "2024-07-01T12:00:00Z",
                   "data": {"type": "Feature", "id": "abcd", "properties": {}}}, separators=(",", ":")).encode()


@pytest.fixture()
def consumer(tmp_path: Path) -> Iterator[WebhookConsumer]:
    with WebhookConsumer([SECRET], tmp_path / "c.sqlite", path="/hook") as c:
        yield c


def post(c: WebhookConsumer, body: bytes, headers: dict[str, str], path: str = "/hook") -> httpx.Response:
    return httpx.post(f"http://127.0.0.1:{c.port}{path}", content=body,
                      headers={**headers, "content-type": "application/json"}, timeout=5)


def test_valid_webhook_is_stored_once_and_repeats_answer_200(consumer: WebhookConsumer) -> None:
    h = webhook_headers([SECRET], "msg_1", BODY)
    r = post(consumer, BODY, h)
    assert r.status_code == 200 and r.json() == {"ok": True, "duplicate": False}
    # The same message again (a retry whose 2xx was lost, or a replay inside the window).
    r2 = post(consumer, BODY, h)
    assert r2.status_code == 200 and r2.json()["duplicate"] is True
    # A retry re-signs with a new timestamp but keeps the id: still a duplicate.
    r3 = post(consumer, BODY, webhook_headers([SECRET], "msg_1", BODY, timestamp=int(time.time()) + 1))
    assert r3.json()["duplicate"] is True
    [rec] = consumer.store.received()
    assert (rec.webhook_id, rec.type, rec.alert_id, rec.body.encode()) == ("msg_1", "alert.fire", "abcd", BODY)
    assert consumer.store.counters() == {"accepted": 1, "duplicates": 2}


def test_seen_ids_survive_a_restart(tmp_path: Path) -> None:
    h = webhook_headers([SECRET], "msg_1", BODY)
    with WebhookConsumer([SECRET], tmp_path / "c.sqlite") as c:
        assert post(c, BODY, h, "/").json()["duplicate"] is False
    with WebhookConsumer([SECRET], tmp_path / "c.sqlite") as c:
        assert post(c, BODY, h, "/").json()["duplicate"] is True


def test_tampered_body_or_signature_is_401(consumer: WebhookConsumer) -> None:
    h = webhook_headers([SECRET], "msg_2", BODY)
    assert post(consumer, BODY.replace(b"fire", b"fira"), h).status_code == 401
    bad = dict(h, **{"webhook-signature": "v1," + "A" * 43 + "="})
    assert post(consumer, BODY, bad).status_code == 401
    other = webhook_headers([generate_secret()], "msg_2", BODY)
    assert post(consumer, BODY, other).status_code == 401
    assert consumer.store.received() == []
    assert consumer.store.counters() == {"bad_signature": 3}


def test_old_or_future_timestamp_is_400(consumer: WebhookConsumer) -> None:
    now = int(time.time())
    for ts in (now - 400, now + 400):  # well past the 300 s tolerance: a loaded machine must not turn it into a pass
        r = post(consumer, BODY, webhook_headers([SECRET], "msg_3", BODY, timestamp=ts))
        assert r.status_code == 400 and "timestamp" in r.json()["error"]
    assert consumer.store.received() == []
    assert consumer.store.counters() == {"bad_timestamp": 2}


def test_missing_headers_bad_json_wrong_path_and_huge_body(consumer: WebhookConsumer) -> None:
    assert post(consumer, BODY, {}).status_code == 400
    junk = b"not json"
    assert post(consumer, junk, webhook_headers([SECRET], "msg_4", junk)).status_code == 400
    assert post(consumer, BODY, webhook_headers([SECRET], "msg_5", BODY), path="/other").status_code == 404
    big = b"x" * ((1 << 20) + 1)
    assert post(consumer, big, webhook_headers([SECRET], "msg_6", big)).status_code == 413
    health = httpx.get(f"http://127.0.0.1:{consumer.port}/", timeout=5)
    assert health.status_code == 200 and health.json()["bad_request"] == 3
    assert consumer.store.received() == []


def test_consumer_rejects_bad_configuration(tmp_path: Path) -> None:
    with pytest.raises(GroundError):
        WebhookConsumer([], tmp_path / "c.sqlite")
    with pytest.raises(GroundError):
        WebhookConsumer(["whsec_%%%"], tmp_path / "c.sqlite")
    with pytest.raises(GroundError):
        WebhookConsumer([SECRET], tmp_path / "c.sqlite", tolerance_s=0)


def test_cap_xml_is_validated_and_indexed_by_alert_id(consumer: WebhookConsumer) -> None:
    from _ground_util import make_alert
    from pipelines.alerts.cap import alert_to_cap

    a = make_alert(2)
    url = f"http://127.0.0.1:{consumer.port}/hook"
    cap = alert_to_cap(a).encode()
    h = {**webhook_headers([SECRET], "msg_cap", cap), "content-type": "application/cap+xml"}
    r = httpx.post(url, content=cap, headers=h, timeout=5)
    assert r.status_code == 200 and r.json()["duplicate"] is False
    (got,) = consumer.store.received()
    assert (got.alert_id, got.type, got.content_type) == (a.alert_id, f"alert.{a.kind}", "application/cap+xml")
    # Correctly signed but not a CAP alert: refused, not stored.
    junk = b"<alert>not CAP</alert>"
    h = {**webhook_headers([SECRET], "msg_junk", junk), "content-type": "application/cap+xml"}
    assert httpx.post(url, content=junk, headers=h, timeout=5).status_code == 400
    assert len(consumer.store.received()) == 1
