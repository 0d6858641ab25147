"""The admin in a real browser: Debian's headless Chromium, driven through ChromeDriver's
WebDriver protocol (plain HTTP, no client library), 1,400 px wide, logs in and opens every
page an operator uses (the job list, a failed job, queues, a queue's limits, periodic
schedules, workers), checks that what must be seen is on the first screen, and takes
screenshots (checked for size and not blank; with PGQUEUE_KEEP_SCREENSHOTS=docs they are
written where docs/django.md shows them)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from djtesting import HERE, spawn_manage, wait_until
from shop.tasks import email_order

from pgqueue import store
from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.models import Job, Worker
from pgqueue.periodic import Schedule as PeriodicSchedule
from pgqueue.periodic import save_schedule

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WIDTH, HEIGHT = 1400, 900

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed "
           "(apt-get install -y chromium chromium-driver)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False
    return True


class Browser:
    """The WebDriver calls this test needs, on one ChromeDriver session."""

    def __init__(self, driver_url: str, user_data_dir: Path) -> None:
        self.driver_url = driver_url
        options = {"binary": CHROMIUM, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
            f"--window-size={WIDTH},{HEIGHT}", f"--user-data-dir={user_data_dir}"]}
        session = _http("POST", f"{driver_url}/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})
        self.session = f"{driver_url}/session/{session['value']['sessionId']}"

    def go(self, url: str) -> None:
        _http("POST", f"{self.session}/url", {"url": url})

    def element(self, css: str) -> str:
        found = _http("POST", f"{self.session}/element", {"using": "css selector", "value": css})
        return next(iter(found["value"].values()))

    def type(self, css: str, text: str) -> None:
        _http("POST", f"{self.session}/element/{self.element(css)}/value", {"text": text})

    def click(self, css: str) -> None:
        _http("POST", f"{self.session}/element/{self.element(css)}/click", {})

    def script(self, code: str) -> Any:
        return _http("POST", f"{self.session}/execute/sync", {"script": code, "args": []})["value"]

    def viewport(self) -> tuple[int, int]:
        """The page's size in device pixels: what a screenshot of the window must measure."""
        return tuple(self.script(  # type: ignore[return-value]
            "return [Math.round(innerWidth * devicePixelRatio),"
            " Math.round(innerHeight * devicePixelRatio)]"))

    def source(self) -> str:
        return _http("GET", f"{self.session}/source")["value"]

    def screenshot(self) -> bytes:
        return base64.b64decode(_http("GET", f"{self.session}/screenshot")["value"])

    def quit(self) -> None:
        _http("DELETE", self.session)


def png_facts(png: bytes) -> tuple[int, int, int]:
    """(width, height, distinct colours sampled) of an 8-bit RGB or RGBA PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, header = 8, [], b""
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position:position + 8])
        content = png[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = content
        elif kind == b"IDAT":
            chunks.append(content)
        position += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour_type in (2, 6), (depth, colour_type)
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):  # undo the PNG row filter
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - up_left
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + best) & 0xFF
        if row % 10 == 0:
            colours.update(bytes(line[i:i + 3]) for i in range(0, stride, channels * 4))
        previous = line
    return width, height, len(colours)


@pytest.fixture
def live_server(clean_jobs) -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "manage.py"), "runserver", f"127.0.0.1:{port}",
         "--insecure", "--noreload"], env=clean_jobs.env(), cwd=HERE,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{url}/admin/login/"), timeout=30,
                   message="runserver to answer")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    port = _free_port()
    driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    driver_url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{driver_url}/status"), timeout=30,
                   message="chromedriver to answer")
        session = Browser(driver_url, tmp_path / "chromium-profile")
        try:
            yield session
        finally:
            session.quit()
    finally:
        driver.terminate()
        driver.wait(timeout=30)


def _on_first_screen(browser: Browser, css: str) -> bool:
    """The element is inside the window as it opens, without scrolling."""
    return bool(browser.script(
        f"const e = document.querySelector({json.dumps(css)}); if (!e) return false;"
        " const r = e.getBoundingClientRect();"
        " return r.width > 0 && r.top >= 0 && r.left >= 0"
        " && r.bottom <= innerHeight && r.right <= innerWidth;"))


def _operators_day() -> int:
    """Jobs, a failure, limits, a pause and schedules: what the pages show. The failed job's id."""
    for reference in ("K-1", "K-2"):
        email_order.defer(reference)
    email_order.using(queue="bulk").defer("K-3")
    email_order.using(queue="reports", run_at=timezone.now() + timedelta(hours=2)).defer("K-4")
    app.run_worker(one_shot=True, queues=["emails"])
    failed = app.get_task("newsletter.tasks.notify_user").using(queue="mail").defer(10**6)
    Job.objects.filter(pk=failed).update(max_attempts=1)
    app.run_worker(one_shot=True, queues=["mail"])
    for name, value in (("concurrency", "2"), ("rate_limit", "100/m")):
        app.db.run(store.set_queue_limit(queue="bulk", limit_name=name, limit_value=value))
    app.db.run(store.pause_queue(queue="reports"))
    save_schedule(app, PeriodicSchedule(task_name="shop.tasks.email_order", id="hourly-digest",
                                        every=timedelta(hours=1), args=["digest"]))
    save_schedule(app, PeriodicSchedule(task_name="shop.tasks.email_order", id="nightly-report",
                                        cron="0 3 * * *", args=["nightly"]))
    return failed


def _running_with_progress() -> int:
    """A job as a worker leaves it while its task reports progress: 40%, a message, meta."""
    job_id = email_order.defer("K-5")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE pgqueue.jobs SET state = 'running', enqueued_at = now() - interval '96 s', "
            "run_at = now() - interval '96 s', started_at = now() - interval '95 s', "
            "attempts = 1, progress = 0.4, progress_message = 'resized 40 of 100', "
            "progress_at = now() - interval '2 s', meta = %s WHERE id = %s",
            ['{"batch": "2026-12-03", "sizes": [64, 256, 1024]}', job_id])
    return job_id


def _shoot(browser: Browser, name: str, shots: dict[str, bytes]) -> None:
    shot = browser.screenshot()
    width, height, colours = png_facts(shot)
    assert (width, height) == browser.viewport() and width == WIDTH, (name, width, height)
    assert colours > 8, f"the screenshot of {name} looks blank"
    shots[name] = shot


def _log_in(browser: Browser, live_server: str, next_path: str) -> None:
    """As a new superuser, through the login form, landing on `next_path`."""
    User.objects.filter(username="browser").delete()
    User.objects.create_superuser("browser", "browser@example.com", "correct horse")
    browser.go(f"{live_server}/admin/login/?next={next_path}")
    browser.type("#id_username", "browser")
    browser.type("#id_password", "correct horse")
    browser.click("input[type=submit]")


def _keep(shots: dict[str, bytes], tmp_path: Path) -> None:
    """Write the screenshots to PGQUEUE_KEEP_SCREENSHOTS (docs, for docs/django.md), else to
    the test's temporary folder."""
    keep = os.environ.get("PGQUEUE_KEEP_SCREENSHOTS")
    target = Path(keep) if keep else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    for name, shot in shots.items():
        (target / f"{name}.png").write_bytes(shot)


def test_every_admin_page_in_headless_chromium(live_server, browser, clean_jobs,
                                               tmp_path) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM pgqueue.queue_limits; DELETE FROM pgqueue.paused_queues; "
                       "DELETE FROM pgqueue.schedules")
    failed = _operators_day()
    shots: dict[str, bytes] = {}

    try:
        _log_in(browser, live_server, "/admin/pgqueue/job/")
        wait_until(lambda: "Select job to change" in browser.source(), timeout=30,
                   message="the job list")
        page = browser.source()
        _shoot(browser, "admin-jobs", shots)
        assert "shop.tasks.email_order" in page and "succeeded" in page and "bulk" in page
        # The error column of the newest (failed) job fits the 1,400 px window.
        assert _on_first_screen(browser, "#result_list tbody tr:first-child .pgq-error-cell")
        for element in ("#changelist-filter h2", "th.column-when_display",
                        "#result_list tbody tr:first-child td.field-when_display"):
            assert _on_first_screen(browser, element), element

        browser.go(f"{live_server}/admin/pgqueue/job/{failed}/change/")
        wait_until(lambda: 'id="job-summary"' in browser.source(), timeout=30,
                   message="the job page")
        for element in ("#job-retry", "#job-error .pgq-error-head", "#job-traceback"):
            assert _on_first_screen(browser, element), element
        assert "DoesNotExist" in browser.script(
            "return document.querySelector('#job-error').innerText")
        _shoot(browser, "admin-job-failed", shots)

        reporting = _running_with_progress()
        browser.go(f"{live_server}/admin/pgqueue/job/{reporting}/change/")
        wait_until(lambda: 'id="job-progress"' in browser.source(), timeout=30,
                   message="the running job's page")
        for element in ("#job-progress progress", "#job-progress-message", "#job-cancel"):
            assert _on_first_screen(browser, element), element
        assert browser.script("return document.querySelector('#job-progress progress')"
                              ".position") == pytest.approx(0.4)
        _shoot(browser, "admin-job-progress", shots)

        browser.go(f"{live_server}/admin/pgqueue/queue/")
        wait_until(lambda: "Select queue to change" in browser.source(), timeout=30,
                   message="the queues page")
        page = browser.source()
        assert "2 at once, 100/m" in page and "pgq-paused" in page
        for column in ("column-limits", "column-held_back", "column-waits"):
            assert _on_first_screen(browser, f"th.{column}"), column
        _shoot(browser, "admin-queues", shots)

        browser.go(f"{live_server}/admin/pgqueue/queue/bulk/change/")
        wait_until(lambda: "id_rate_limit" in browser.source(), timeout=30,
                   message="the limits form")
        assert browser.script("return document.querySelector('#id_rate_limit').value") == "100/m"
        assert _on_first_screen(browser, "#id_concurrency")
        _shoot(browser, "admin-queue-limits", shots)

        worker = spawn_manage(clean_jobs, "pgqueue", "worker", "--concurrency", "4",
                              log=tmp_path / "worker.log")
        try:
            wait_until(lambda: Worker.objects.filter(alive=True, server_connections=3).exists(),
                       timeout=30, message="a worker to register")
            browser.go(f"{live_server}/admin/pgqueue/worker/")
            wait_until(lambda: "Select worker to" in browser.source(), timeout=30,
                       message="the workers page")
            assert "pgq-alive" in browser.source()
            for column in ("column-slots_busy", "column-server_connections",
                           "column-last_heartbeat"):
                assert _on_first_screen(browser, f"th.{column}"), column
            _shoot(browser, "admin-workers", shots)
            browser.go(f"{live_server}/admin/pgqueue/schedule/")
            wait_until(lambda: "hourly-digest" in browser.source(), timeout=30,
                       message="the schedules page")
            assert "every 1h" in browser.source() and "0 3 * * *" in browser.source()
            assert _on_first_screen(browser, "th.column-next_run")
            _shoot(browser, "admin-schedules", shots)
        finally:
            worker.terminate()
            worker.wait(timeout=30)

        # Django 6 styles its breadcrumbs as a list: the pages above use the stock templates.
        assert browser.script("return getComputedStyle(document.querySelector("
                              "'.breadcrumbs')).backgroundColor") not in ("", "rgba(0, 0, 0, 0)")
    finally:  # written even when an assertion fails, to look at what the browser saw
        _keep(shots, tmp_path)


def test_a_workflow_in_headless_chromium(live_server, browser, clean_jobs, tmp_path) -> None:
    """A chord's callback page (its parents, its dependent and its workflow on the first
    screen) and the workflow's list, as docs/django.md shows them."""
    from shop.tasks import sum_weights, weigh

    from pgqueue import chain, chord

    handle = chain(chord([weigh.s("north"), weigh.s("south"), weigh.s("east")],
                         sum_weights.s(label="kg")),
                   weigh.using(queue="reports").s()).defer()
    app.run_worker(one_shot=True, queues=["default"])  # all but the last step, left queued
    callback = handle.job_ids[3]
    shots: dict[str, bytes] = {}
    try:
        _log_in(browser, live_server, f"/admin/pgqueue/job/{callback}/change/")
        wait_until(lambda: 'id="job-parents"' in browser.source(), timeout=30,
                   message="the callback's page")
        for element in ("#job-workflow a", "#job-parents li:last-child a",
                        "#job-dependents li a"):
            assert _on_first_screen(browser, element), element
        parents = browser.script("return document.querySelector('#job-parents').innerText")
        assert parents.count("succeeded") == 3 and f"#{handle.job_ids[0]}" in parents
        assert "queued" in browser.script(
            "return document.querySelector('#job-dependents').innerText")
        _shoot(browser, "admin-workflow-job", shots)

        browser.click("#job-workflow a")
        wait_until(lambda: 'id="workflow-summary"' in browser.source(), timeout=30,
                   message="the workflow's list")
        summary = browser.script(
            "return document.querySelector('#workflow-summary').innerText")
        assert "running" in summary and "5 jobs: 1 queued, 4 succeeded" in summary
        assert _on_first_screen(browser, "th.column-parents_display")
        _shoot(browser, "admin-workflow", shots)
    finally:
        _keep(shots, tmp_path)
