"""`python -m demo --serve`: the development server and a worker, to click around, until
Ctrl-C (or SIGTERM), which stops both with SIGTERM and then the throwaway database."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import urllib.request
from urllib.error import URLError

from django.contrib.auth.models import User

from demo.output import Clock
from demo.processes import manage_command, start, stop, wait_for, worker_command

ADMIN_USER = ADMIN_PASSWORD = "admin"


def serve(clock: Clock, port: int) -> int:
    user = User.objects.filter(username=ADMIN_USER).first() or User(
        username=ADMIN_USER, is_staff=True, is_superuser=True)
    user.set_password(ADMIN_PASSWORD)
    user.save()

    # SIGTERM stops the demo as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    url = f"http://127.0.0.1:{port}/"
    worker = start(worker_command())
    server = start(manage_command("runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"))
    try:
        if not wait_for(lambda: server.poll() is not None or _answers(url), timeout=30) \
                or server.poll() is not None:
            clock.say("the development server did not start")
            return 1
        clock.say(f"serving {url} (admin: {url}admin/, user {ADMIN_USER}, password "
                  f"{ADMIN_PASSWORD}); a worker runs the jobs. Ctrl-C stops everything.")
        while worker.poll() is None and server.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=1)
        clock.say("the worker or the server exited")
        return 1
    except KeyboardInterrupt:
        clock.say("stopping")
        return 0
    finally:
        for process in (server, worker):
            stop(process)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (URLError, OSError):
        return False
