"""The view of a query's results that every results page shows the same way: how many, the minimum similarity,
the ranking, the catalog filters and the thumbs, all from the app state (and so from a link).

A page reruns on every click, most of them changing nothing of the view: the catalog's column types and filters
are kept per index generation (and ``columns.json``), and the session's last search per query, thumbs, options
and index generation, so a rerun that shows the same view does not compute it again."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import streamlit as st

from core.data.columns import OVERRIDES, ColumnTypes, catalog_column_types
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


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        s = path.stat()
    except OSError:
        return None
    return s.st_mtime_ns, s.st_size


@st.cache_data(show_spinner=False, max_entries=32)
def _catalog_view(catalog_dir: str, index_root: str, fingerprint: str, overrides: tuple[int, int] | None,
                  _ctx: Context) -> tuple[ColumnTypes, list[Facet]]:
    """The column types and filters of one index generation's live products (and one ``columns.json``)."""
    fields = live_fields(_ctx)
    types = catalog_column_types(_ctx.catalog_dir, fields)
    return types, facets(fields, types=types)


def _view_of(ctx: Context) -> tuple[ColumnTypes, list[Facet]]:
    return _catalog_view(str(ctx.catalog_dir), str(ctx.index.root), ctx.index.fingerprint,
                         _stamp(Path(ctx.catalog_dir) / OVERRIDES), ctx)


def catalog_types(ctx: Context) -> ColumnTypes:
    """The catalog's column types (its columns.json honoured), kept per index generation and columns.json."""
    return _view_of(ctx)[0]


def catalog_facets(ctx: Context) -> list[Facet]:
    """The filters the catalog's live products offer (kept with :func:`catalog_types`)."""
    return _view_of(ctx)[1]


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


VIEW_MEMO = "vps_view_memo"  # the session's last search: (query, what else it depends on, result, milliseconds)


def view_results(ctx: Context, searcher: Searcher, q: Query, where: list[str], *, rank: str | None = None,
                 weights: dict[str, float] | None = None, wait: bool = True) -> tuple[SearchResult, Arranged]:
    """The query's results as the view shows them: refined by the thumbs, searched with the state's k, minimum
    similarity and ranking (``rank``/``weights`` override it), liked products pinned first, disliked hidden. The
    same query with the same thumbs, options and index generation (and its attribute filters as ready as they
    were) is not searched again on a rerun: the session's last search is shown."""
    state = app_state()
    v = state.votes
    opts = SearchOptions.make(k=state.k + len(v), where=where, min_similarity=state.min_score,
                              rank=rank or state.rank, weights=weights)
    depends = (dict(v), opts, str(searcher.index.root), searcher.index.fingerprint, searcher.embedder.spec,
               wait or searcher.ready)
    memo = st.session_state.get(VIEW_MEMO)
    if memo is None or memo[0] is not q or memo[1] != depends:
        t0 = time.perf_counter()
        refined = replace(q, vector=refine(ctx.index, q.vector, v)) if v else q
        res = bounded(searcher.search, refined, opts, wait=wait)
        memo = (q, depends, res, (time.perf_counter() - t0) * 1000)
        st.session_state[VIEW_MEMO] = memo
    return memo[2], arrange(memo[2].hits, v, state.k)


def view_search_ms() -> float:
    """How long the view's search took (the feedback, the wait in the shared pool, the search), in ms."""
    memo = st.session_state.get(VIEW_MEMO)
    return memo[3] if memo else 0.0
