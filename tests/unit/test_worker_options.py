"""Per-queue slots: how `-q` is read and what WorkerOptions refuses."""

from __future__ import annotations

import pytest

from pgqueue import cli
from pgqueue.errors import ConfigurationError
from pgqueue.worker.options import WorkerOptions


def _worker_args(*argv: str) -> object:
    return cli.build_parser().parse_args(["worker", *argv])


def test_queue_counts_become_slots_of_their_own() -> None:
    args = _worker_args("-q", "emails:5,reports:1,default")
    assert args.queues == (["emails", "reports", "default"], {"emails": 5, "reports": 1})


def test_a_colon_not_followed_by_a_count_is_part_of_the_name() -> None:
    assert _worker_args("-q", "tenant:eu,x").queues == (["tenant:eu", "x"], {})


@pytest.mark.parametrize("spec", ["emails:0", "emails:-1"])
def test_zero_or_negative_slots_are_refused(spec: str, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    with pytest.raises(SystemExit) as exited:
        _worker_args("-q", spec)
    assert exited.value.code == 2


def test_groups_total_and_label() -> None:
    options = WorkerOptions(queues=("emails", "reports", "default"),
                            queue_slots={"emails": 5, "reports": 1}, concurrency=2)
    assert options.slot_groups == [(("emails",), 5), (("reports",), 1), (("default",), 2)]
    assert options.total_slots == 8
    assert options.queues_label == "emails:5,reports:1,default"


def test_every_queue_with_its_own_slots_leaves_no_shared_group() -> None:
    options = WorkerOptions(queues=("emails", "reports"), queue_slots={"emails": 5, "reports": 1})
    assert options.slot_groups == [(("emails",), 5), (("reports",), 1)]
    assert options.total_slots == 6


def test_without_queue_slots_one_group_claims_every_queue() -> None:
    assert WorkerOptions(concurrency=3).slot_groups == [(None, 3)]


@pytest.mark.parametrize(("queues", "slots", "message"), [
    (None, {"emails": 1}, "queue_slots needs queues"),
    (("reports",), {"emails": 1}, "not in queues"),
    (("emails",), {"emails": 0}, ">= 1"),
    (("emails",), {"emails": True}, ">= 1"),
])
def test_bad_queue_slots_are_refused(queues: tuple[str, ...] | None, slots: dict[str, int],
                                     message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WorkerOptions(queues=queues, queue_slots=slots)
