"""On Search, a labelled example photo (the real-photo demo's) that the pretrained network misses gets one plain
sentence: what the photo is, what the network put first, and whether the network trained for this catalog finds
it, with a button that switches to it."""

from __future__ import annotations

import streamlit as st

from core.data.query_sets import example_labels
from core.embedding.query import embed_query
from core.index import Hit
from core.search.engine import SearchOptions
from ui.bounded import bounded
from ui.caches import Context, get_embedder, get_index, index_searcher, shipped_head
from ui.messages import USER_ERRORS, md
from ui.network import use_network
from ui.state import Photo


@st.cache_data(show_spinner=False, max_entries=64)
def _labels(catalog_dir: str) -> dict[str, str]:
    return example_labels(catalog_dir)


def trained_rank(ctx: Context, head: str, photo: Photo, rank: str) -> int | None:
    """Where the catalog's trained head ranks the photo's product (None: not in its first 10)."""
    emb = get_embedder(head)
    searcher = index_searcher(get_index(ctx.catalog_dir, emb), emb, wait=False)
    q = bounded(embed_query, emb, photo.data, name=photo.name)
    want = _labels(str(ctx.catalog_dir)).get(photo.name)
    hits = bounded(searcher.search, q, SearchOptions.make(k=10, rank=rank), wait=False).hits
    return next((h.rank for h in hits if h.product_id == want), None)


def example_note(ctx: Context, photo: Photo | None, hits: list[Hit], rank: str) -> None:
    """The note, when ``photo`` is a labelled example: found first (one line), or missed (what came first, and
    whether the trained network finds it, with a button that switches)."""
    if photo is None or photo.source != "example" or not hits:
        return
    want = _labels(str(ctx.catalog_dir)).get(photo.name)
    if not want:
        return
    head = shipped_head(ctx.catalog_dir)
    trained = ctx.spec == head

    def title(pid: str) -> str:
        return md(ctx.index.products.get(pid, {}).get("title") or pid)

    network = "network trained for this catalog" if trained else "pretrained network"
    if hits[0].product_id == want:
        st.success(f"This photo is **{title(want)}**: the {network} puts it first.", icon=":material/check:")
        return
    where = next((f" (the right product is #{h.rank})" for h in hits if h.product_id == want), "")
    text = f"This photo is **{title(want)}**; the {network} puts **{title(hits[0].product_id)}** first{where}."
    if not head or trained:
        st.warning(text, icon=":material/help:")
        return
    try:
        found = trained_rank(ctx, head, photo, rank)
    except USER_ERRORS:
        found = None
    if found == 1:
        text += " The network trained for this catalog finds it:"
    else:
        text += (f" The network trained for this catalog puts it #{found}." if found else
                 " The network trained for this catalog misses it too.")
    with st.container(border=True):
        st.warning(text, icon=":material/help:")
        st.button("Switch to the trained network", key="vps_switch_trained", on_click=use_network,
                  args=(True, head), type="primary", icon=":material/swap_horiz:",
                  help="The same network with a small head trained on this catalog's shop photos (metric "
                       "learning): photos of one product land close to its catalog picture.")
