"""The CPU-bound job of the pool benchmark (benchmarks/pools.py): a fixed amount of pure-Python
work, about 20 ms on one core of the benchmark machine, the same in every peer. Fixed work
rather than a fixed duration, so a pool that shares one core between its slots (threads under
the GIL) shows it as fewer jobs per second. Standard library only: every peer imports it."""

from __future__ import annotations

ROUNDS = 14_000
"""Rounds of `burn`: 14,000 took 20 ms of CPU on the 2-core benchmark VM (the least of 30
runs; benchmarks/pools.py measures it again and records it with each run)."""


def burn(rounds: int = ROUNDS) -> int:
    total = 0
    for _ in range(rounds):
        total += sum(i * i for i in range(50))
    return total
