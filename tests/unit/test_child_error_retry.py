"""A child process's exception crosses as its class name: `pgqueue.Fail` and the policy's
retry_on / dont_retry_on are matched by that name (pgqueue.worker.executor)."""

from __future__ import annotations

from pgqueue.retry import RetryPolicy
from pgqueue.types import JobError
from pgqueue.worker.executor import _retryable_by_name


def _error(type_name: str) -> JobError:
    return JobError(type=type_name, message="m", traceback="t")


def test_fail_never_retries() -> None:
    assert not _retryable_by_name(RetryPolicy(), _error("Fail"))


def test_dont_retry_on_and_retry_on_are_matched_by_class_name() -> None:
    policy = RetryPolicy(retry_on=(TimeoutError, ConnectionError), dont_retry_on=(ValueError,))
    assert _retryable_by_name(policy, _error("TimeoutError"))
    assert not _retryable_by_name(policy, _error("ValueError"))
    assert not _retryable_by_name(policy, _error("KeyError")), "not in retry_on"
    assert _retryable_by_name(RetryPolicy(), _error("KeyError")), "no filter: retry"
