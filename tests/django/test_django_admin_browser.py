"""The jobs admin in a real browser: Debian's headless Chromium, driven through ChromeDriver's
WebDriver protocol (plain HTTP, no client library), logs in, opens the job list and the queue
summary, and takes screenshots that the test checks (size, and that they are not blank)."""

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
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from djtesting import HERE, wait_until
from shop.tasks import email_order

from pgqueue.contrib.django.app import app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WIDTH, HEIGHT = 1280, 900

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


def test_admin_job_list_and_summary_in_headless_chromium(live_server, browser, tmp_path) -> None:
    User.objects.filter(username="browser").delete()
    User.objects.create_superuser("browser", "browser@example.com", "correct horse")
    for reference in ("K-1", "K-2"):
        email_order.defer(reference)
    email_order.using(queue="bulk").defer("K-3")
    app.run_worker(one_shot=True, queues=["emails"])

    browser.go(f"{live_server}/admin/login/?next=/admin/pgqueue/job/")
    browser.type("#id_username", "browser")
    browser.type("#id_password", "correct horse")
    browser.click("input[type=submit]")
    wait_until(lambda: "Select job to change" in browser.source(), timeout=30,
               message="the job list")
    page = browser.source()
    assert "shop.tasks.email_order" in page and "succeeded" in page and "bulk" in page

    shot = browser.screenshot()
    (tmp_path / "jobs.png").write_bytes(shot)
    width, height, colours = png_facts(shot)
    assert width == WIDTH and height > HEIGHT // 2
    assert (width, height) == browser.viewport()
    assert colours > 8, "the screenshot looks blank"

    browser.go(f"{live_server}/admin/pgqueue/job/summary/")
    assert "Oldest waiting" in browser.source()
    summary = browser.screenshot()
    width, height, colours = png_facts(summary)
    assert (width, height) == browser.viewport() and colours > 8
    if os.environ.get("PGQUEUE_KEEP_SCREENSHOTS"):
        target = Path(os.environ["PGQUEUE_KEEP_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        (target / "admin-jobs.png").write_bytes(shot)
        (target / "admin-summary.png").write_bytes(summary)
