"""Jobs as rows of COPY's text format, streamed a chunk at a time for bulk enqueue.

The columns every job of one call shares are escaped once; each row adds only its id and its two
JSON documents. Chunks are produced lazily, so the caller's encoding of chunk k+1 overlaps the
server's ingest of chunk k.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

NULL = "\\N"


def copy_field(text: str) -> str:
    """A text value as a COPY field. JSON escapes tab, newline and carriage return itself, and
    names are printable, so only backslashes need doubling."""
    return text.replace("\\", "\\\\")


def job_rows(
    ids: Sequence[int], arguments: Iterable[Sequence[tuple[str, str]]], *, head: str, tail: str,
) -> Iterator[str]:
    """One COPY text chunk per chunk of (args JSON, kwargs JSON) pairs, the rows laid out as
    `id, head…, args, kwargs, tail…`; ids are taken in order, one per pair, and must all be used
    (a short or long count would misnumber jobs silently)."""
    start = 0
    for chunk in arguments:
        end = start + len(chunk)
        if end > len(ids):
            raise ValueError(f"more jobs than the {len(ids)} ids reserved for them")
        yield "".join([
            f"{job_id}\t{head}\t{copy_field(args)}\t{copy_field(kwargs)}\t{tail}\n"
            for job_id, (args, kwargs) in zip(ids[start:end], chunk, strict=True)
        ])
        start = end
    if start != len(ids):
        raise ValueError(f"{start} jobs for the {len(ids)} ids reserved for them")
