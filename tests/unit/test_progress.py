"""What a task may report (pgqueue.progress) and how reports coalesce in memory."""

from __future__ import annotations

import math
import threading

import pytest

import pgqueue
from pgqueue.errors import (
    ConfigurationError,
    InvalidMeta,
    InvalidProgress,
    InvalidReport,
    ResultTooLarge,
)
from pgqueue.progress import (
    MAX_META_BYTES,
    MAX_PROGRESS_MESSAGE,
    ProgressReport,
    ProgressUpdate,
    check_progress,
)
from pgqueue.validation import checked_result


def test_progress_is_a_finite_fraction_with_an_optional_short_message() -> None:
    assert check_progress(0, None) == (0.0, None)
    assert check_progress(1, "done") == (1.0, "done")
    assert check_progress(0.5, "a\x00b") == (0.5, "a\\x00b")  # Postgres text holds no NUL
    for bad in (-0.01, 1.01, math.nan, math.inf, True, "0.5", None):
        with pytest.raises(InvalidProgress):
            check_progress(bad, None)
    with pytest.raises(InvalidProgress, match="at most 1000 characters, not 1001"):
        check_progress(0.5, "x" * (MAX_PROGRESS_MESSAGE + 1))
    with pytest.raises(InvalidProgress):
        check_progress(0.5, 42)
    with pytest.raises(InvalidProgress):
        check_progress(0.5, "\ud800")  # a lone surrogate is not text Postgres can store
    assert issubclass(InvalidProgress, InvalidReport) and issubclass(InvalidReport, ValueError)


def test_meta_must_survive_json_and_stay_under_the_cap() -> None:
    report = ProgressReport()
    report.set_meta({"rows": 3, "nested": {"ok": [1, None]}})
    for bad in ({"when": {1, 2}}, {"t": (1, 2)}, {"n": math.nan}, {1: "int key"}):
        with pytest.raises(InvalidMeta):
            report.set_meta(bad)
    with pytest.raises(InvalidMeta, match=f"the cap is {MAX_META_BYTES}"):
        report.set_meta({"blob": "x" * MAX_META_BYTES})
    assert report.take() == ProgressUpdate(meta={"rows": 3, "nested": {"ok": [1, None]}})


def test_reports_coalesce_the_latest_progress_wins_and_meta_keys_merge() -> None:
    woken: list[int] = []
    report = ProgressReport(on_pending=lambda: woken.append(1))
    for done in range(1, 10_001):
        report.set_progress(done / 10_000, f"{done}")
    report.set_meta({"a": 1})
    report.set_meta({"b": 2, "a": 3})
    assert woken == [1]  # told once, not once per call
    assert report.take() == ProgressUpdate(1.0, "10000", {"a": 3, "b": 2})
    assert report.take() is None
    report.set_meta({"c": 1})
    assert len(woken) == 2
    # meta alone keeps the progress written before; a progress without message clears it
    assert report.take() == ProgressUpdate(None, None, {"c": 1})


def test_a_failed_write_is_put_back_under_newer_reports() -> None:
    report = ProgressReport()
    report.set_progress(0.2, "old")
    report.set_meta({"a": 1, "b": 1})
    taken = report.take()
    assert taken is not None
    report.set_progress(0.3)
    report.set_meta({"b": 2})
    report.put_back(taken)
    assert report.take() == ProgressUpdate(0.3, None, {"a": 1, "b": 2})


def test_after_close_reports_are_ignored() -> None:
    report = ProgressReport()
    report.set_progress(0.7, "last")
    assert report.close() == ProgressUpdate(0.7, "last")
    report.set_progress(0.9)  # a thread the task left behind
    report.put_back(ProgressUpdate(0.1))
    assert report.take() is None


def test_reports_from_many_threads_keep_each_update_whole() -> None:
    report = ProgressReport()

    def hammer(n: int) -> None:
        for i in range(2000):
            report.set_progress(i / 2000, f"thread {n} at {i}")

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    last = report.take()
    assert last is not None and last.message is not None
    assert last.message.endswith(f"at {round(last.progress * 2000)}")


def test_frames_round_trip() -> None:
    update = ProgressUpdate(0.5, "half", {"k": [1]})
    assert ProgressUpdate.from_frame(update.to_frame()) == update


def test_result_cap_names_the_size_and_the_cap() -> None:
    assert checked_result('"' + "x" * 98 + '"', 100) == '"' + "x" * 98 + '"'
    assert checked_result("é" * 30, 100) == "é" * 30  # 60 bytes: the cap counts bytes
    with pytest.raises(ResultTooLarge, match="is 102 bytes of JSON; the app's "
                                             "result_max_bytes is 100"):
        checked_result("é" * 51, 100)
    assert checked_result("x" * 10**6, None)  # no cap
    assert pgqueue.App("postgresql:///x").result_max_bytes == 1024 * 1024
    for bad in (0, -1, 1.5, True, "1MB"):
        with pytest.raises(ConfigurationError):
            pgqueue.App("postgresql:///x", result_max_bytes=bad)
