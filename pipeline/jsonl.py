"""Reading JSON lines, defined once: the run's `jsonl` inputs (pipeline/sources.py), classifier
examples (classifiers/data.py), SFT conversations and DPO pairs (train/chat.py).

`read_jsonl` gives each non-blank line of a file as (line number, value): the parsed JSON, or, for
a line that is not JSON, the ValueError saying why. What a bad line means (a removed row, an error,
a skipped example) is the caller's to decide. A file is a local path or an fsspec URL, decompressed
by its extension (.gz, .bz2, .xz, .zst, ...). Lines are numbered from 1, blank ones counted, and
split as Python's text mode splits them (at \\n, \\r\\n or \\r).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Literal

import fsspec


class LineTooLong(ValueError):
    pass


def read_jsonl(path: str | Path, *, errors: Literal["strict", "replace"] = "strict",
               storage_options: dict[str, Any] | None = None, max_line: int | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value or ValueError) of every non-blank line of `path`.

    Bytes that are not UTF-8: with `errors="replace"` they are read as U+FFFD (a crawl's text is
    kept, damaged); with "strict" their line is an error of its own (its bytes go to `json.loads`,
    which names the bad byte, and accepts a leading UTF-8 byte-order mark). A line of over
    `max_line` characters is an error too, read past without being held whole."""
    text_errors = "replace" if errors == "replace" else "surrogateescape"  # strict: undecodable bytes kept for json.loads
    with fsspec.open(str(path), "rt", compression="infer", encoding="utf-8", errors=text_errors,
                     **(storage_options or {})) as handle:
        for number, line in enumerate(_lines(handle, max_line), 1):
            if isinstance(line, ValueError):
                yield number, line
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line if errors == "replace" else line.encode("utf-8", "surrogateescape"))
            except ValueError as error:
                value = error
            yield number, value


def _lines(handle, max_line: int | None) -> Iterator[str | ValueError]:
    """The file's lines; a line longer than `max_line` is a LineTooLong in its place."""
    if max_line is None:
        yield from handle
        return
    while line := handle.readline(max_line + 1):
        if len(line) <= max_line or line.endswith("\n"):
            yield line
            continue
        while (rest := handle.readline(max_line + 1)) and not rest.endswith("\n"):
            pass  # the rest of the over-long line, dropped a piece at a time
        yield LineTooLong(f"a line of over {max_line} characters")
