"""Several products in one photo: the photo with numbered boxes over it; clicking a box (or its chip) makes that
product the query. The chosen box becomes the photo's crop (searched padded square, as region search does), so
every page and the manual crop start from it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import streamlit as st
from PIL import Image
from streamlit_image_coordinates import streamlit_image_coordinates

from core.data.images import open_image
from core.search.engine import Searcher, SearchOptions
from ui.bounded import bounded
from ui.caches import Context, get_searcher
from ui.messages import md
from ui.progress_bar import LazyBar
from ui.state import Photo, app_state, keep

if TYPE_CHECKING:  # core.search.regions (torch, scipy) is imported when the toggle is on, not for every search
    from core.search.regions import Box, RegionSearch, RegionSearcher

SHOWN = 640  # the preview's longer side, pixels
CHIP_TEXT = 22  # characters of a product's title on its chip
PICKER_WIDTH = 340  # pixels: a fixed width gives the picker its true height (a stretched one is sized once, at a
#                     width the column may not keep, and its bottom is then cut off)
#: the chips wrap onto more lines (Streamlit's pills scroll sideways in one line, hiding all but the first few)
CHIPS_WRAP = ('<style>[class*="st-key-regions_chip_"] [data-testid="stButtonGroup"] div:has(> button)'
              '{flex-wrap:wrap;overflow-x:visible;row-gap:.4rem}</style>')


@st.cache_resource(show_spinner=False, max_entries=4)
def _region_searcher(index_root: str, fingerprint: str, spec: str, _searcher: Searcher,
                     _progress) -> RegionSearcher:
    from core.search.regions import RegionSearcher

    try:
        return RegionSearcher(_searcher, progress=_progress)
    finally:  # removed inside the cached call: a later session's cache hit replays no bar stuck at n/n
        _progress.empty()


def region_searcher(ctx: Context) -> RegionSearcher:
    """The index's region searcher; its productness head is trained on first use (progress shown, then cached)."""
    bar = LazyBar("Learning to find products in photos of this catalog")
    return _region_searcher(str(ctx.index.root), ctx.index.fingerprint, ctx.spec, get_searcher(ctx), bar)


def found_regions(ctx: Context, photo: Photo) -> RegionSearch:
    """The product boxes of ``photo`` and each box's best products, once per photo, index and embedder."""
    key = (ctx.spec, ctx.index.fingerprint, photo.digest)
    memo = st.session_state.get("regions_memo")
    if not memo or memo[0] != key:
        rs = region_searcher(ctx)
        with st.spinner("Finding the products in the photo…"):
            memo = (key, bounded(rs.search, photo.data, SearchOptions.make(k=1)))
        st.session_state["regions_memo"] = memo
    return memo[1]


def percent_box(box: Box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A pixel box as the crop sliders' whole percentages, rounded outwards (the product stays inside)."""
    w, h = size
    return (max(0, math.floor(100 * box[0] / w)), max(0, math.floor(100 * box[1] / h)),
            min(100, math.ceil(100 * box[2] / w)), min(100, math.ceil(100 * box[3] / h)))


def choose_region(photo: Photo, box: Box, size: tuple[int, int]) -> None:
    """Make ``box`` the photo's crop, searched padded square; the crop sliders start from it."""
    state = app_state()
    state.crop, state.crop_for, state.boxed_for = percent_box(box, size), photo.id, photo.id
    for k in (f"crop_x_{photo.digest}", f"crop_y_{photo.digest}"):
        st.session_state.pop(k, None)


def _chosen(photo: Photo, boxes: list[Box], size: tuple[int, int]) -> int | None:
    """The found box that is the photo's current crop, if any."""
    state = app_state()
    if not state.boxed(photo):
        return None
    return next((i for i, b in enumerate(boxes) if percent_box(b, size) == state.crop), None)


def region_picker(ctx: Context, photo: Photo) -> None:
    """A toggle; on, the photo with its products numbered, a chip per product; a click on either chooses one."""
    keep("find_products", False, lambda v: isinstance(v, bool))
    if not st.toggle("Find each product", key="find_products",
                     help="Finds the products in the photo; click one (or its number) to search for it."):
        return
    from core.search.regions import draw_regions, region_at

    found = found_regions(ctx, photo)
    if not found.regions:
        st.info("No product found in this photo; crop it by hand below.")
        return
    boxes = [r.box for r in found.regions]
    img = open_image(photo.data)
    chosen = _chosen(photo, boxes, img.size)

    def clicked() -> None:
        c = st.session_state.get(click_key)
        if not c or not c.get("width"):
            return
        s = img.width / c["width"]
        i = region_at(boxes, (c["x"] * s, c["y"] * s))
        if i is not None:
            choose_region(photo, boxes[i], img.size)
            st.session_state[chips_key] = i

    click_key, chips_key = f"regions_click_{photo.digest}", f"regions_chip_{photo.digest}"
    preview: Image.Image = draw_regions(img, boxes, size=SHOWN, selected=chosen)
    streamlit_image_coordinates(preview, key=click_key, on_click=clicked, cursor="pointer",
                                width=min(PICKER_WIDTH, preview.width))

    def label(i: int) -> str:
        r = found.regions[i]
        best = r.hits[0].fields.get("title") or r.hits[0].product_id if r.hits else "?"
        best = best if len(best) <= CHIP_TEXT else best[:CHIP_TEXT - 1].rstrip() + "…"  # a chip stays one line
        return f"{i + 1} · {best}" + (" (no close match)" if r.no_close_match else "")

    def picked() -> None:
        i = st.session_state.get(chips_key)
        if i is not None:
            choose_region(photo, boxes[i], img.size)

    st.session_state[chips_key] = chosen
    st.html(CHIPS_WRAP)
    st.pills(f"{len(boxes)} product(s) found, click one to search it", list(range(len(boxes))),
             format_func=lambda i: md(label(i)), key=chips_key, on_change=picked)
    if chosen is None:
        st.caption("Click a box or a number to search that product; the whole photo is searched meanwhile.")
