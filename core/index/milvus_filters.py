"""Catalog filters (``core.data.filters``) as Milvus boolean expressions, with the same meaning.

Each vector row stores its product's fields twice for filtering: ``f`` (JSON: column -> case-folded text) and
``n`` (JSON: column -> number, only for values that read as a finite number). A filter then compares case-folded
text as :class:`~core.data.filters.Condition` does, and a numeric test is false for text that is not a number
(``exists`` guards every test, so a missing key never turns a ``!=`` into false).

Every ``exists`` is in parentheses of its own: Milvus servers (2.3) read ``exists a and b`` as
``exists (a and b)`` and refuse it; Milvus Lite reads both.
"""

from __future__ import annotations

import json
import math

import numpy as np

from core.data.filters import Condition, FilterError, _num, _num_or_none

#: per-row JSON fields that filters read
TEXT, NUMBER = "f", "n"
_CMP = {"<": "<", ">": ">", "<=": "<=", ">=": ">="}


def lit(s: str) -> str:
    """A string literal Milvus reads back as ``s`` (double-quoted, JSON escapes)."""
    return json.dumps(str(s), ensure_ascii=False)


def number(x: float) -> str:
    """A finite number as a plain decimal literal (no exponent, which Milvus expressions do not all read)."""
    if not math.isfinite(x):
        raise FilterError(f"filter numbers must be finite, not {x}")
    return np.format_float_positional(x, trim="-")


def _path(field: str, column: str) -> str:
    return f"{field}[{lit(column)}]"


def filter_fields(fields: dict[str, str]) -> tuple[dict[str, str], dict[str, float]]:
    """``(f, n)`` of one product's fields: case-folded text, and the values that are finite numbers."""
    text = {k: str(v).casefold() for k, v in fields.items()}
    nums = {}
    for k, v in fields.items():
        x = _num_or_none(str(v))
        if x is not None and math.isfinite(x):
            nums[k] = x
    return text, nums


def _condition(c: Condition) -> str:
    t, n = _path(TEXT, c.column), _path(NUMBER, c.column)
    if c.op in ("=", "!="):
        if ".." in c.value:
            lo, hi = (_num(x) if x else None for x in c.value.split("..", 1))
            parts = [f"(exists {n})"] + ([f"{n} >= {number(lo)}"] if lo is not None else []) + (
                [f"{n} <= {number(hi)}"] if hi is not None else [])
            test = "(" + " and ".join(parts) + ")"
        else:
            wanted = sorted({v.strip().casefold() for v in c.value.split(",")})
            any_of = " or ".join(f"{t} == {lit(v)}" for v in wanted)
            test = f"((exists {t}) and ({any_of}))"
            if "" in wanted:  # a product without the column has "" there
                test = f"((not (exists {t})) or {test})"
        return test if c.op == "=" else f"(not {test})"
    return f"((exists {n}) and {n} {_CMP[c.op]} {number(_num(c.value))})"


def to_expr(conds: list[Condition]) -> str:
    """One Milvus expression for all ``conds`` (ANDed); ``""`` when there are none."""
    return " and ".join(_condition(c) for c in conds)
