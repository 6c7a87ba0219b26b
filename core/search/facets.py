"""Filter widgets from catalog columns: categorical facets (value lists) and numeric ranges -> ``where``.

Only filterable columns (see :mod:`core.data.columns`) are offered: ids, long text and titles never are."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.data.catalog import column_values, numeric_columns
from core.data.columns import MAX_CHOICES, ColumnTypes, column_types


@dataclass
class Facet:
    column: str
    kind: str  # "categorical" | "numeric"
    options: list[str] = field(default_factory=list)
    low: float = 0.0
    high: float = 0.0


def facets(products: dict[str, dict[str, str]], columns: list[str] | None = None,
           types: ColumnTypes | None = None) -> list[Facet]:
    """Facets for the filterable columns of ``products`` (product_id -> fields), by ``types`` (default: inferred
    from ``products``; pass :func:`core.data.columns.catalog_column_types` to honour a catalog's columns.json)."""
    if columns is None:
        columns = list(dict.fromkeys(c for f in products.values() for c in f))
    types = types or column_types(products, columns)
    columns = [c for c in columns if c in set(types.filterable)]
    nums = set(numeric_columns(products, columns))
    out = []
    for c in columns:
        vals = column_values(products, c)
        if not vals:
            continue
        if c in nums:
            lo, hi = min(map(float, vals)), max(map(float, vals))
            if hi > lo:
                out.append(Facet(c, "numeric", low=lo, high=hi))
        else:
            opts = sorted(set(vals), key=str.casefold)
            if 1 < len(opts) <= MAX_CHOICES and "," not in "".join(opts):
                out.append(Facet(c, "categorical", options=opts))
    return out


def where_clauses(selected: dict[str, list[str] | tuple[float, float]], available: list[Facet]) -> list[str]:
    """Filter expressions for ``ProductIndex.search(where=...)``; full ranges and empty picks add nothing."""
    by_col = {f.column: f for f in available}
    out = []
    for col, sel in selected.items():
        f = by_col.get(col)
        if f is None or not sel:
            continue
        if f.kind == "categorical":
            out.append(f"{col}={','.join(sel)}")
        else:
            lo, hi = sel
            if lo > f.low or hi < f.high:
                out.append(f"{col}={lo:.10g}..{hi:.10g}")
    return out
