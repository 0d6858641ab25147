"""The Django integration's named queries (``sql/queries.sql`` beside this module), as `Call`s
that run like the engine's: on Django's connection (`connection.run_on_django`) or any other."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import TypeVar

from pgqueue.db import Call
from pgqueue.queries import parse_named_queries

T = TypeVar("T")

DJANGO_QUERIES: dict[str, str] = parse_named_queries(
    resources.files("pgqueue.contrib.django").joinpath("sql/queries.sql")
    .read_text(encoding="utf-8"))


@dataclass(frozen=True, slots=True)
class DjangoCall(Call[T]):
    """A `Call` of a query of the Django integration's file instead of the engine's."""

    @property
    def sql(self) -> str:
        try:
            return DJANGO_QUERIES[self.query_name]
        except KeyError:
            raise KeyError(f"no Django query named {self.query_name!r}; known: "
                           f"{', '.join(sorted(DJANGO_QUERIES))}") from None
