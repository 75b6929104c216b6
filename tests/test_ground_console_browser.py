"""The web console in a real headless Chromium (Debian ``chromium`` + ``chromium-driver``, via selenium).

It opens the console served by a real uvicorn server, counts the markers the page drew, clicks a
marker on the map canvas and sees the alert's detail with its thumbnail chip, filters by kind, sees
an alert stored by another connection appear without a reload, and requeues a dead letter.

Needs: ``apt-get install chromium chromium-driver`` and the dev extra (selenium). Without them the
tests are skipped with the reason -- except under CI (CI=true), where a missing browser fails them:
a CI run that silently skipped the browser would not have tested the console.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _web_util import make_alerts, make_console_store, running  # noqa: E402

from pipelines.alerts.model import Alert  # noqa: E402
from pipelines.ground.store import AlertStore  # noqa: E402
from pipelines.ground.web import create_app  # noqa: E402

N = 60
TOKEN = "browser-test-token"
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
INSTALL = "apt-get install chromium chromium-driver; pip install -e '.[dev]'"


def _missing(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} -- CI must run the browser tests ({INSTALL})")
    pytest.skip(f"{why} ({INSTALL})")


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    binary = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    chromedriver = shutil.which("chromedriver")
    if binary is None or chromedriver is None:
        _missing(f"headless Chromium not found (chromium: {binary}, chromedriver: {chromedriver})")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(binary)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900", "--disable-extensions"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(str(chromedriver)), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def wait(d: Any, cond: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    logs = "\n".join(str(x) for x in d.get_log("browser"))
    raise AssertionError(f"timed out waiting for {what}; browser log:\n{logs}")


def js(d: Any, code: str) -> Any:
    return d.execute_script(code)


def open_console(d: Any, url: str) -> None:
    d.get(url + "/")
    wait(d, lambda: js(d, "return window.ow && window.ow.ready"), "the console to draw its markers")


def click_marker(d: Any, alert_id: str) -> None:
    """A real mouse click on the marker's pixel of the map canvas."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    x, y = js(d, f"return window.ow.pointOf({alert_id!r})")
    m = d.find_element(By.ID, "map")
    ActionChains(d).move_to_element_with_offset(m, int(x - m.size["width"] / 2), int(y - m.size["height"] / 2)) \
        .click().perform()


def isolated(d: Any, candidates: list[Alert], others: list[Alert]) -> Alert:
    """The candidate whose marker is farthest from every other marker (a click hits only it)."""
    pts = {a.alert_id: js(d, f"return window.ow.pointOf({a.alert_id!r})") for a in others}

    def room(a: Alert) -> float:
        x, y = pts[a.alert_id]
        return min(math.hypot(x - u, y - v) for k, (u, v) in pts.items() if k != a.alert_id)
    return max(candidates, key=room)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, list[Alert]]]:
    path = tmp_path_factory.mktemp("console") / "ground.sqlite"
    alerts = make_console_store(path, n=N, thumbs=10)
    with running(create_app(path, poll_s=0.5)) as url:
        yield url, path, alerts


Console = tuple[str, Path, list[Alert]]


def test_markers_counted_and_an_alert_opens_with_its_thumbnail(driver: Any, console: Console) -> None:
    from selenium.webdriver.common.by import By

    url, _, alerts = console
    open_console(driver, url)
    assert js(driver, "return window.ow.markers") == N
    assert driver.find_element(By.ID, "count").text.startswith(f"{N} alerts match")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#list li")) == N
    target = isolated(driver, alerts[:10], alerts)  # the first 10 have thumbnail chips
    click_marker(driver, target.alert_id)
    wait(driver, lambda: target.alert_id in driver.find_element(By.ID, "d-title").text, "the clicked alert's detail")
    img = driver.find_element(By.ID, "d-thumb")
    loaded = "const i = document.getElementById('d-thumb'); return i.complete && i.naturalWidth"
    wait(driver, lambda: js(driver, loaded), "the thumbnail to load")
    assert img.is_displayed() and js(driver, "return document.getElementById('d-thumb').naturalWidth") == 32
    assert img.size["width"] >= 128  # scaled up for the eye
    assert f'"alert_id": "{target.alert_id}"' in driver.find_element(By.ID, "d-geojson").text
    wait(driver, lambda: "urn:oasis:names:tc:emergency:cap:1.2" in js(
        driver, "return document.getElementById('d-cap').textContent"), "the CAP message")
    states = [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#d-deliv tbody tr td:nth-child(2)")]
    assert states and set(states) <= {"pending", "delivered", "dead-lettered"}
    # An alert without a chip says so.
    driver.find_elements(By.CSS_SELECTOR, "#list li")[0].click()  # the newest: no thumbnail
    wait(driver, lambda: alerts[-1].alert_id in driver.find_element(By.ID, "d-title").text, "the newest alert")
    assert driver.find_element(By.ID, "d-nothumb").is_displayed() and not img.is_displayed()


def test_kind_filter_and_live_updates_without_reload(driver: Any, console: Console) -> None:
    from selenium.webdriver.common.by import By

    url, path, alerts = console
    open_console(driver, url)
    js(driver, "window.ow.marked = true")  # survives only if the page is never reloaded
    driver.find_element(By.CSS_SELECTOR, "input[name=kind][value=vessel]").click()
    non_vessels = sum(1 for a in alerts if a.kind != "vessel")
    wait(driver, lambda: js(driver, "return window.ow.markers") == non_vessels, "the vessel markers to go")
    new = make_alerts(6, seed=9, scene="S1B_LIVE")
    with AlertStore(path) as st:
        st.add_alerts(new)
    fresh = sum(1 for a in new if a.kind != "vessel")
    wait(driver, lambda: js(driver, "return window.ow.markers") == non_vessels + fresh, "new alerts to appear")
    assert js(driver, "return window.ow.marked") is True
    assert driver.find_elements(By.CSS_SELECTOR, "#list li")[0].get_attribute("data-id") == \
        next(a.alert_id for a in reversed(new) if a.kind != "vessel")


def test_requeue_from_the_console_with_a_token(driver: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    path = tmp_path / "g.sqlite"
    alerts = make_console_store(path, n=6)
    with running(create_app(path, token=TOKEN)) as url:
        open_console(driver, url)
        token = driver.find_element(By.ID, "token")
        token.send_keys(TOKEN)
        token.send_keys("\t")  # change event: kept for this tab
        li = driver.find_element(By.CSS_SELECTOR, f'#list li[data-id="{alerts[1].alert_id}"]')
        li.click()
        button = wait(driver, lambda: next(iter(driver.find_elements(By.CSS_SELECTOR, "#d-deliv button")), None),
                      "the requeue button of the dead letter")
        button.click()
        # Read in the page (the table is re-rendered after the requeue: no stale element handles).
        states = "return [...document.querySelectorAll('#d-deliv tbody tr')].map(" \
                 "(tr) => tr.children[1].textContent + (tr.querySelector('button') ? '+button' : ''))"
        wait(driver, lambda: js(driver, states) == ["pending", "pending"], "both deliveries to be pending")
    with AlertStore(path) as st:
        assert st.delivery(alerts[1].alert_id, "ops")["state"] == "pending"
