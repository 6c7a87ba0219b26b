"""Metadata filters: ``category=shoes,bags``, ``price<50``, ``price>=10``, ``price=10..50``, ``colour!=red``."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

_OPS = {"<=": operator.le, ">=": operator.ge, "!=": None, "<": operator.lt, ">": operator.gt, "=": None}
_RE = re.compile(r"^\s*([^<>=!]+?)\s*(<=|>=|!=|<|>|=)\s*(.*?)\s*$")


class FilterError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: str

    def test(self, fields: dict[str, str]) -> bool:
        have = fields.get(self.column, "")
        if self.op in ("=", "!="):
            if ".." in self.value:
                lo, hi = (_num(x) if x else None for x in self.value.split("..", 1))
                x = _num_or_none(have)
                ok = x is not None and (lo is None or x >= lo) and (hi is None or x <= hi)
            else:
                wanted = {v.strip().casefold() for v in self.value.split(",")}
                ok = have.casefold() in wanted
            return ok if self.op == "=" else not ok
        x = _num_or_none(have)
        return x is not None and _OPS[self.op](x, _num(self.value))


def _num(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise FilterError(f"not a number: {s!r}") from None


def _num_or_none(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def parse_where(exprs: list[str] | str | None) -> list[Condition]:
    """Parse filter expressions; several are combined with AND."""
    if not exprs:
        return []
    if isinstance(exprs, str):
        exprs = [exprs]
    out = []
    for e in exprs:
        m = _RE.match(e)
        if not m:
            raise FilterError(f"cannot read filter {e!r}; use column=value[,value], column<number, column=lo..hi")
        col, op, val = m.groups()
        cond = Condition(col, op, val)
        if op in ("<", ">", "<=", ">="):
            _num(val)
        out.append(cond)
    return out


def matches(fields: dict[str, str], conds: list[Condition]) -> bool:
    return all(c.test(fields) for c in conds)
