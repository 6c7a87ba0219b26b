"""The view of a query's results that every results page shows the same way: how many, the minimum similarity,
the ranking, the catalog filters and the thumbs, all from the app state (and so from a link)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from core.data.columns import ColumnTypes, catalog_column_types
from core.embedding.query import Query
from core.search.engine import Searcher, SearchOptions, SearchResult
from core.search.facets import Facet, facets, where_clauses
from core.search.feedback import Arranged, arrange, refine
from ui.bounded import bounded
from ui.caches import Context
from ui.state import Selection, app_state


def live_fields(ctx: Context) -> dict[str, dict[str, str]]:
    """product_id -> fields of the catalog's live (not removed) products."""
    return {p: ctx.index.products[p] for p in ctx.index.live_products()}


def catalog_types(ctx: Context) -> ColumnTypes:
    """The catalog's column types (its columns.json honoured)."""
    return catalog_column_types(ctx.catalog_dir, live_fields(ctx))


def catalog_facets(ctx: Context, types: ColumnTypes) -> list[Facet]:
    """The filters the catalog's live products offer."""
    return facets(live_fields(ctx), types=types)


def facet_range(f: Facet) -> tuple[float, float, float]:
    """A numeric filter's slider: (low, high, step), the catalog's range widened to whole steps."""
    step = 1.0 if f.high - f.low > 20 else 0.1
    return float(np.floor(f.low / step) * step), float(np.ceil(f.high / step) * step), step


def valid_selection(f: Facet, sel: object) -> bool:
    """Whether ``sel`` is a selection the filter ``f`` can show."""
    if f.kind == "categorical":
        return isinstance(sel, list) and set(sel) <= set(f.options)
    lo, hi, _ = facet_range(f)
    return isinstance(sel, tuple) and len(sel) == 2 and lo <= sel[0] <= sel[1] <= hi


def view_where(available: list[Facet]) -> list[str]:
    """The state's filters as search filters; selections the catalog cannot show are left out (and dropped)."""
    state = app_state()
    by_col = {f.column: f for f in available}
    state.filters = {c: s for c, s in state.filters.items() if c in by_col and valid_selection(by_col[c], s)}
    return where_clauses(dict(state.filters), available)


def set_filter(f: Facet, sel: Selection) -> None:
    """Keep a filter's selection in the state; "any" (nothing picked, the whole range) is no filter."""
    state = app_state()
    lo, hi, _ = facet_range(f)
    if not sel or (f.kind != "categorical" and tuple(sel) == (lo, hi)):
        state.filters.pop(f.column, None)
    else:
        state.filters[f.column] = list(sel) if f.kind == "categorical" else (float(sel[0]), float(sel[1]))


def view_results(ctx: Context, searcher: Searcher, q: Query, where: list[str], *, rank: str | None = None,
                 weights: dict[str, float] | None = None, wait: bool = True) -> tuple[SearchResult, Arranged]:
    """The query's results as the view shows them: refined by the thumbs, searched with the state's k, minimum
    similarity and ranking (``rank``/``weights`` override it), liked products pinned first, disliked hidden."""
    state = app_state()
    v = state.votes
    q = replace(q, vector=refine(ctx.index, q.vector, v)) if v else q
    opts = SearchOptions.make(k=state.k + len(v), where=where, min_similarity=state.min_score,
                              rank=rank or state.rank, weights=weights)
    res = bounded(searcher.search, q, opts, wait=wait)
    return res, arrange(res.hits, v, state.k)
