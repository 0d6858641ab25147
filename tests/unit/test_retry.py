from __future__ import annotations

import pytest

from pgqueue.errors import ConfigurationError
from pgqueue.retry import DEFAULT_MAX_ATTEMPTS, RetryPolicy, coerce_retry


def test_exponential_backoff_grows_is_jittered_and_capped() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=10)
    for attempt, ceiling in ((1, 1), (2, 2), (3, 4), (4, 8), (10, 10)):
        delays = {policy.delay_after(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jitter: failures of a burst do not retry in lockstep


def test_exponential_without_jitter_is_exact() -> None:
    policy = RetryPolicy(base_delay=0.5, jitter=False)
    assert [policy.delay_after(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_fixed_and_callable_backoff() -> None:
    assert RetryPolicy(backoff="fixed", base_delay=3).delay_after(7) == 3
    assert RetryPolicy(backoff=lambda attempt: attempt**4 + 5).delay_after(2) == 21


def test_callable_returning_nonsense_is_reported() -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(backoff=lambda attempt: -1).delay_after(1)


def test_coerce_retry() -> None:
    assert coerce_retry(None).max_attempts == DEFAULT_MAX_ATTEMPTS
    assert coerce_retry(True).max_attempts == DEFAULT_MAX_ATTEMPTS
    assert coerce_retry(False).max_attempts == 1
    assert coerce_retry(0).max_attempts == 1
    assert coerce_retry(4).max_attempts == 5
    policy = RetryPolicy(max_attempts=9)
    assert coerce_retry(policy) is policy
    for bad in (-1, "3", 1.5):
        with pytest.raises(ConfigurationError):
            coerce_retry(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigurationError):
        RetryPolicy(backoff="linear")  # type: ignore[arg-type]


def test_retry_on_and_dont_retry_on_decide_which_errors_retry() -> None:
    from pgqueue.retry import RetryPolicy

    policy = RetryPolicy(retry_on=(ConnectionError, TimeoutError),
                         dont_retry_on=(ConnectionRefusedError,))
    assert policy.should_retry(ConnectionResetError())       # a subclass of a listed one
    assert policy.should_retry(TimeoutError())
    assert not policy.should_retry(ValueError())
    assert not policy.should_retry(ConnectionRefusedError())  # the narrower "no" wins
    assert RetryPolicy().should_retry(ValueError())           # no filter: everything retries
    assert RetryPolicy(retry_on=KeyError).retry_on == (KeyError,)


def test_exception_filters_must_be_exception_classes() -> None:
    import pytest

    from pgqueue.errors import ConfigurationError
    from pgqueue.retry import RetryPolicy

    with pytest.raises(ConfigurationError, match="retry_on"):
        RetryPolicy(retry_on=("ValueError",))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="dont_retry_on"):
        RetryPolicy(dont_retry_on=(int,))  # type: ignore[arg-type]


def test_backoff_callable_gets_the_exception_only_when_it_takes_it() -> None:
    from pgqueue.retry import RetryPolicy

    seen: list[object] = []
    two = RetryPolicy(backoff=lambda attempt, exc: seen.append((attempt, exc)) or 2.0)
    one = RetryPolicy(backoff=lambda attempt: attempt * 10.0)
    error = ValueError("x")
    assert two.delay_after(3, error) == 2.0 and seen == [(3, error)]
    assert one.delay_after(3, error) == 30.0
