"""Worker subprocesses: start, watch their memory, stop them; and the peer command runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    pass


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (from /proc, Linux only)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def _peak_rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Worker:
    """One or more worker processes of a system, with a memory sampler.

    Peak RSS is the sum over the process tree of each process's own peak (VmHWM), sampled every
    100 ms until stop(): for a single-process worker it is exactly its peak RSS.
    """

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path,
                 processes: int = 1,
                 per_process: Callable[[int], Sequence[str]] = lambda n: ()) -> None:
        """`per_process(n)`: arguments added for the n-th process (a node name)."""
        self.started_at = time.time()
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.procs = [
            subprocess.Popen([*argv, *per_process(n)], env=dict(env), cwd=ROOT,
                             stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
            for n in range(processes)
        ]
        self._peaks: dict[int, int] = {}
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._done.wait(0.1):
            for proc in self.procs:
                for pid in _tree(proc.pid):
                    self._peaks[pid] = max(self._peaks.get(pid, 0), _peak_rss_kib(pid))

    @property
    def peak_rss_mib(self) -> float:
        return sum(self._peaks.values()) / 1024 / max(1, len(self.procs))

    def pids(self) -> list[int]:
        """Every process of the worker(s), children included."""
        return [pid for proc in self.procs for pid in _tree(proc.pid)]

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise BenchError(f"worker exited early with code {proc.returncode}; "
                                 f"see {self._log.name}")

    def stop(self, grace: float = 10.0) -> None:
        self._done.set()
        self._sampler.join()
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._log.close()


def run_json(argv: Sequence[str], env: Mapping[str, str], timeout: float = 900) -> dict:
    """Run a peer command; its last stdout line is a JSON object."""
    done = subprocess.run(list(argv), env=dict(env), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise BenchError(f"{' '.join(argv)} printed no result:\n{done.stdout[-2000:]}")
    return json.loads(lines[-1])
