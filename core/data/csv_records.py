"""CSV records with their line numbers, where a quoting mistake costs one row, never the rest of the file.

The ``csv`` module, left to itself, reads an unterminated quote as one cell running to the end of the file (every
later row silently gone) and raises on a cell over its field limit. Here each record is parsed strictly; a record
that fails is reported as its first line, and parsing resumes on the next line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import NamedTuple


class Record(NamedTuple):
    first: int  # line number where the record starts (1-based)
    last: int  # line where it ends (a quoted cell may span lines)
    cells: list[str] | None  # None when the record could not be parsed
    error: str = ""


def _reason(e: csv.Error, first: int, last: int) -> str:
    text = str(e)
    if "unexpected end of data" in text:
        return 'unterminated quote: a " opened on this line is never closed'
    if "expected after" in text:
        return 'stray quote: text follows a closing " (quote the whole cell and write a " inside it as "")'
    if "field larger than field limit" in text:
        limit = f"the {csv.field_size_limit() // 1024} KiB limit"
        if last > first:
            return f"unterminated quote? a quoted cell runs over lines {first}-{last} past {limit}"
        return f"a cell is longer than {limit}"
    return f"unreadable CSV row ({text})"


def records(text: str) -> Iterator[Record]:
    """Every record of ``text``; blank lines are left out."""
    lines = io.StringIO(text, newline="").readlines()
    pos = 0  # lines before the current reader's first
    while pos < len(lines):
        start = pos
        reader = csv.reader((lines[i] for i in range(start, len(lines))), strict=True)
        done = 0  # lines this reader has consumed up to the end of its last good record
        try:
            for cells in reader:
                if cells:
                    yield Record(start + done + 1, start + reader.line_num, cells)
                done = reader.line_num
            return
        except csv.Error as e:
            first, last = start + done + 1, start + reader.line_num
            yield Record(first, last, None, _reason(e, first, last))
            pos = start + done + 1
