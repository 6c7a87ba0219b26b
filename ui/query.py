"""The query picker the query pages share (example photo, upload or camera; crop; text), bound to the app state
so that the search page, the map and "Why these results" all work on the same query."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.data.images import ImageError, image_size, open_image, whole_decode_bytes
from core.data.query_sets import example_photos
from core.embedding.decode import Crop, crop_preview
from core.embedding.query import Query, embed_query, query_zooms
from ui.bounded import bounded
from ui.caches import Context
from ui.messages import md
from ui.settings import setting, settings
from ui.state import Photo, app_state, bind, box_crop
from ui.words import embedder_name

SOURCE_LABELS = {"example": "Example photo", "upload": "Upload a photo", "camera": "Camera"}
IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
PREVIEW = 480  # pixels across the crop preview


def _stamp(folder: Path) -> tuple:
    """The entries of ``folder`` with their modification times (a folder's changes when an entry is added or
    removed, so ``queries/`` covers its photos): what the example photos are read from."""
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()))
    except OSError:
        return ()


@st.cache_resource(show_spinner=False, max_entries=64)
def _examples(catalog_dir: str, stamp: tuple) -> tuple[Path, ...]:
    return tuple(example_photos(catalog_dir))


def cached_examples(catalog_dir: Path) -> list[Path]:
    """The catalog's example photos (:func:`~core.data.query_sets.example_photos`), listed again when an entry of
    its folder changes, not on every rerun."""
    return list(_examples(str(catalog_dir), _stamp(Path(catalog_dir))))


def photo_picker(ctx: Context) -> Photo | None:
    """Radio (example / upload / camera) and the chosen source's widget -> the current photo, or None."""
    state = app_state()
    examples = cached_examples(ctx.catalog_dir)
    labels = {SOURCE_LABELS[s]: s for s in SOURCE_LABELS if s != "example" or examples}
    if state.source not in labels.values():
        state.source = next(iter(labels.values()))
    bind("source", SOURCE_LABELS[state.source], labels.__contains__)
    state.source = labels[st.radio("Photo", list(labels), horizontal=True, key="source",
                                   label_visibility="collapsed")]
    if state.source == "example":
        by_name = {p.name: p for p in examples}
        bind("example", by_name.get(state.example, examples[0]), examples.__contains__)
        pick: Path = st.selectbox("Example shopper photo", examples, format_func=lambda p: p.name, key="example")
        state.example = pick.name
        return Photo("example", pick.name, pick.read_bytes())
    kind = state.source
    if kind == "upload":
        up = st.file_uploader("Photo of the product", type=IMAGE_TYPES, key=kind, on_change=_keep_photo,
                              args=(kind,))
    else:
        up = st.camera_input("Take a photo of the product", key=kind, on_change=_keep_photo, args=(kind,))
    if up is not None:
        state.photos[kind] = (up.name, checked_query_photo(up.getvalue()))
    kept = state.photos.get(kind)
    if kept and up is None:
        st.caption(f"Searching **{md(kept[0])}**, given before; give another photo to replace it.")
    return Photo(kind, *kept) if kept else None


def checked_upload(data: bytes) -> bytes:
    """An uploaded file's bytes, refused (one line) above the server's upload limit, before any decoding."""
    limit = settings().max_upload_bytes
    if len(data) > limit:
        raise ImageError(f"the file is {len(data) / 1e6:.1f} MB; this server takes photos up to {limit / 1e6:.0f} MB")
    return data


def checked_query_photo(data: bytes) -> bytes:
    """A shopper's uploaded photo (:func:`checked_upload`), also refused where decoding it whole (a format not
    decoded at a reduced size) would take more than ``VPS_MAX_UPLOAD_DECODE_BYTES``; from its header."""
    need, most = whole_decode_bytes(checked_upload(data)), setting("max_upload_decode_bytes")
    if need > most:
        raise ImageError(f"decoding this image takes {need / 1e6:.0f} MB, more than the {most / 1e6:.0f} MB this "
                         "server allows for a format it cannot decode at a reduced size: send it as JPEG or as a "
                         "non-interlaced PNG")
    return data


def _keep_photo(kind: str) -> None:
    """An upload / camera widget changed: keep its photo in the state (or forget it when cleared)."""
    f = st.session_state.get(kind)
    if f is None or len(f.getvalue()) > settings().max_upload_bytes:  # too big: photo_picker says why
        app_state().photos.pop(kind, None)
    else:
        app_state().photos[kind] = (f.name, f.getvalue())


def _is_range(v: object) -> bool:
    return isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) and 0 <= x <= 100 for x in v)


def zoom_note(zooms: tuple[float, ...]) -> str:
    """How a whole photo is searched when the embedder has query zooms (empty when it has none)."""
    if not zooms:
        return ""
    return (" — searched as the mean of its centre " + ", ".join(f"{z:.0%}" for z in zooms)
            + " (the trained head's query zooms: the product sits in the middle of a shopper's photo)")


def crop_picker(photo: Photo, ctx: Context) -> Crop:
    """Let the user crop the photo (kept in the state per photo) and preview it; returns the crop searched. The
    caption says when a whole photo is searched through the embedder's centre zooms."""
    state = app_state()
    img = open_image(photo.data, draft_size=PREVIEW)  # a small copy: a huge photo is not decoded at full size
    left, top, right, bottom = state.crop_box(photo)
    kx, ky = f"crop_x_{photo.digest}", f"crop_y_{photo.digest}"
    bind(kx, (left, right), _is_range)
    bind(ky, (top, bottom), _is_range)
    with st.expander("Crop to the product", expanded=False):
        x = st.slider("Left / right edge (%)", 0, 100, key=kx)
        y = st.slider("Top / bottom edge (%)", 0, 100, key=ky)
        c = box_crop((x[0], y[0], x[1], y[1]))
        if c is None:
            st.warning("The crop is empty; searching the whole photo.")
    if (x[0], y[0], x[1], y[1]) != (left, top, right, bottom):  # moved by hand: no longer a found box
        state.boxed_for = ""
    state.crop, state.crop_for = (x[0], y[0], x[1], y[1]), photo.id
    c = c or Crop()
    zooms = query_zooms(ctx.embedder, c, is_boxed(photo))
    w, h = image_size(photo.data)
    st.image(crop_preview(img, c, PREVIEW), caption=f"{md(photo.name)} ({w}×{h})"
             + ("" if c.is_full else " — searching the outlined region") + zoom_note(zooms), width="stretch")
    return c


def text_picker(ctx: Context) -> tuple[str, float]:
    """The text of the query and its weight with a photo (open_clip embedders only)."""
    state = app_state()
    if not ctx.embedder.supports_text:
        name = embedder_name(ctx.spec)  # its network's own name keeps its capitals; the spec is behind the help
        st.caption(f"Text search is off: the {md(name[:1].lower() + name[1:])} reads pictures only. Pick an "
                   "image-and-text network in the sidebar to search with words (\"green dress with stars\") or with "
                   "a photo plus words.", help=f"{ctx.spec} has no text encoder, so words and photos do not share "
                                                "its vector space; open_clip embedders have one.")
        return "", state.text_weight
    bind("text", state.text, lambda v: isinstance(v, str))
    state.text = st.text_input("Describe the product", key="text", placeholder="green dress with stars")
    bind("text_weight", state.text_weight, lambda v: isinstance(v, float) and 0 <= v <= 1)
    state.text_weight = st.slider("Weight of the text (with a photo)", 0.0, 1.0, step=0.05, key="text_weight")
    return state.text, state.text_weight


def state_text(ctx: Context) -> tuple[str, float]:
    """The state's query text, where the embedder reads text (pages without the text box)."""
    state = app_state()
    return (state.text, state.text_weight) if ctx.embedder.supports_text else ("", state.text_weight)


def is_boxed(photo: Photo | None) -> bool:
    """Whether the photo's crop is a found product's box (embedded padded square)."""
    return bool(photo) and app_state().boxed(photo)


def query_key(ctx: Context, photo: Photo | None, crop: Crop, text: str, weight: float) -> tuple:
    """What identifies an embedded query: embedder, photo, crop (and whether it is a found box) and text."""
    return (ctx.spec, photo.digest if photo else None, crop, is_boxed(photo), text.strip(),
            weight if text.strip() else None)


def embedded_query(ctx: Context, photo: Photo | None, crop: Crop, text: str = "", weight: float = 0.5) -> Query:
    """The query through the one query path (``embed_query``, in the shared time-bounded pool), embedded once per
    photo, crop, text and embedder for the whole session (every page reuses it). A crop that is a product box
    found in the photo is padded square first, as region search embeds it."""
    key = query_key(ctx, photo, crop, text, weight)
    memo = st.session_state.get("query_memo")
    if not memo or memo[0] != key:
        q = bounded(embed_query, ctx.embedder, photo.data if photo else None, crop=crop, text=text,
                    text_weight=weight, name=photo.name if photo else "", letterboxed=is_boxed(photo))
        memo = (key, q)
        st.session_state["query_memo"] = memo
    return memo[1]

