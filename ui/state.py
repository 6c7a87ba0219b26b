"""The app's one state, shared by every page: the catalog, the embedder spec, the current query (its photo and
crop, and text) and the view of its results (how many, minimum similarity, ranking, filters, thumbs), kept in
``st.session_state`` and mirrored into the URL so that a link reopens the same view.

Streamlit forgets a keyed widget's value when a page that does not draw the widget runs. The state lives under a
non-widget key; :func:`bind` re-seeds a widget from it just before the widget is drawn (and takes the widget's
own value while it is alive), so a choice survives page switches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from core.embedding import DEFAULT_SPEC
from core.embedding.decode import Crop
from core.index.workspace import SAMPLE_KEY
from ui.links import link_spec, read_link_spec

EMBEDDER_CHOICES = [DEFAULT_SPEC, "efficientnet-lite2", "open_clip:ViT-B-32:laion2b_s34b_b79k"]
STATE_KEY = "vps_app"
KEPT_KEY = "vps_kept"
Box = tuple[int, int, int, int]  # left, top, right, bottom, in % of the photo
FULL: Box = (0, 0, 100, 100)
RANKS = ("static", "dynamic", "distance")
DEFAULT_K, MAX_K = 10, 30
Selection = list[str] | tuple[float, float]  # a categorical filter's values, or a numeric filter's range


@dataclass(frozen=True)
class Photo:
    """The current query photo: where it comes from (example, upload, camera), its file name and bytes."""

    source: str
    name: str
    data: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.data).hexdigest()[:12]

    @property
    def id(self) -> str:
        """What a crop belongs to: an example by name (so a link can carry it), any other photo by content."""
        return f"example:{self.name}" if self.source == "example" else f"{self.source}:{self.digest}"


@dataclass
class AppState:
    """What every page shows. ``spec`` is the last embedder spec that loaded; the sidebar's pick and typed
    spec are kept apart so that a spec that fails to load never replaces it."""

    catalog: str = SAMPLE_KEY  # a known catalog's key (``sample``, an import's name) or a folder; "" = none typed
    spec: str = DEFAULT_SPEC
    spec_choice: str = DEFAULT_SPEC
    spec_typed: str = ""
    #: the head the catalog ships (set by the sidebar): a link names it ``trained``
    shipped_head: str = ""
    #: an embedder a link named that this app does not read (a head folder outside its folders); the sidebar says so
    refused_spec: str = ""
    source: str = "example"
    example: str = ""  # file name in the catalog's queries/ folder ("" = the first)
    photos: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # (name, bytes) by upload / camera
    crop: Box = FULL
    crop_for: str = ""  # the Photo.id the crop belongs to
    #: the crop is a product box found in the photo (Photo.id): searched padded square, as region search does
    boxed_for: str = ""
    text: str = ""
    text_weight: float = 0.5
    k: int = DEFAULT_K  # results shown
    min_score: float = 0.0  # minimum similarity (0 = none)
    rank: str = "static"  # one of RANKS
    filters: dict[str, Selection] = field(default_factory=dict)  # column -> selection
    votes: dict[str, int] = field(default_factory=dict)  # product_id -> +1 liked / -1 disliked
    #: the query (``ui.query.query_key``) the votes were given on; None = from a link: the first query shown
    votes_for: tuple | None = None

    def crop_box(self, photo: Photo) -> Box:
        """The crop of ``photo``: the one chosen for it, else the whole photo."""
        return self.crop if photo.id == self.crop_for else FULL

    def boxed(self, photo: Photo) -> bool:
        """Whether ``photo``'s crop is a found product's box (searched letterboxed)."""
        return photo.id == self.crop_for == self.boxed_for and self.crop != FULL

    def to_params(self) -> dict[str, str | list[str]]:
        """The URL's query parameters: catalog, embedder spec (as :func:`ui.links.link_spec` names it), (for an
        example photo) its name and crop, and the view where it is not the default: ``k``, ``min``, ``rank``,
        ``f.<column>`` (a filter's values, repeated; a numeric one as ``low,high``) and ``like`` / ``dislike``
        (repeated product ids)."""
        out: dict[str, str | list[str]] = {"catalog": self.catalog, "spec": link_spec(self.spec, self.shipped_head)}
        if self.source == "example" and self.example:
            out["q"] = self.example
            if self.crop_for == f"example:{self.example}" and self.crop != FULL and box_crop(self.crop):
                out["crop"] = ",".join(map(str, self.crop))
                if self.boxed_for == self.crop_for:
                    out["boxed"] = "1"
        if self.k != DEFAULT_K:
            out["k"] = str(self.k)
        if self.min_score:
            out["min"] = f"{self.min_score:g}"
        if self.rank != RANKS[0]:
            out["rank"] = self.rank
        for col, sel in self.filters.items():
            out[f"f.{col}"] = list(sel) if isinstance(sel, list) else f"{sel[0]:g},{sel[1]:g}"
        out["like"] = [p for p, v in self.votes.items() if v > 0]
        out["dislike"] = [p for p, v in self.votes.items() if v < 0]
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> AppState:
        """The state a link describes; unusable values are left at their defaults (the pages say why)."""
        every = {k: ([str(x) for x in v] if isinstance(v, list) else [str(v)]) for k, v in params.items()}
        p = {k: v[-1] for k, v in every.items() if v}
        state = cls()
        if isinstance(p.get("catalog"), str) and p["catalog"].strip():
            state.catalog = p["catalog"].strip()
        named = str(p.get("spec") or "").strip()
        spec = read_link_spec(named) if named else ""
        if named and spec is None:
            state.refused_spec = named
        elif spec:
            offered = spec in EMBEDDER_CHOICES or spec != named  # a head in the cache, as the sidebar lists it
            state.spec_choice, state.spec_typed = (spec, "") if offered else (DEFAULT_SPEC, spec)
        q = str(p.get("q") or "")
        if q and Path(q).name == q:
            state.example = q
            box = parse_box(str(p.get("crop") or ""))
            if box != FULL:
                state.crop, state.crop_for = box, f"example:{q}"
                if str(p.get("boxed") or "") == "1":
                    state.boxed_for = state.crop_for
        state.k = _number(p.get("k"), int, state.k, 1, MAX_K)
        state.min_score = _number(p.get("min"), float, state.min_score, 0.0, 1.0)
        state.rank = p["rank"] if p.get("rank") in RANKS else state.rank
        for key, values in every.items():
            col = key[2:]
            if key.startswith("f.") and col and values:  # checked against the catalog's columns by the page
                rng = values[-1].split(",")
                if len(values) == 1 and len(rng) == 2 and all(_is_float(x) for x in rng):
                    state.filters[col] = (float(rng[0]), float(rng[1]))
                else:
                    state.filters[col] = values
        for key, sign in (("like", 1), ("dislike", -1)):
            state.votes.update(dict.fromkeys((x for x in every.get(key, []) if x), sign))
        return state


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(text: str | None, kind: type, default, low, high):
    """``text`` as ``kind`` within [low, high], else ``default``."""
    try:
        value = kind(text)
    except (TypeError, ValueError):
        return default
    return value if low <= value <= high else default


def parse_box(text: str) -> Box:
    """``"left,top,right,bottom"`` in % -> a box; the whole photo when the text is not a usable crop."""
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        return FULL
    if len(box) != 4 or box_crop(box) is None:  # type: ignore[arg-type]
        return FULL
    return box  # type: ignore[return-value]


def box_crop(box: Box) -> Crop | None:
    """The :class:`Crop` of a box in %, or None when it keeps nothing."""
    left, top, right, bottom = box
    if not (0 <= left < right <= 100 and 0 <= top < bottom <= 100):
        return None
    return Crop(left / 100, top / 100, right / 100, bottom / 100)


def app_state() -> AppState:
    """The session's app state; on the session's first run it is restored from the URL."""
    ss = st.session_state
    if STATE_KEY not in ss:
        ss[STATE_KEY] = AppState.from_params(url_params())
    return ss[STATE_KEY]


def url_params() -> dict[str, list[str]]:
    """The URL's query parameters, each with every value it is given."""
    return {k: st.query_params.get_all(k) for k in st.query_params}


def sync_url(state: AppState) -> None:
    """Mirror the state into the URL (only when it changed)."""
    want = state.to_params()
    if url_params() != {k: v if isinstance(v, list) else [v] for k, v in want.items()}:
        st.query_params.from_dict(want)


def bind(key: str, value: Any, valid: Callable[[Any], bool] = lambda v: True) -> Any:
    """Call just before drawing the widget ``key`` (drawn without a default of its own): it shows its own value
    while it is alive and valid, else ``value`` from the state. Returns what it will show.

    A live, valid value is left unwritten: a value written here is sent to the browser as one to show, and the
    reply of a run still going when the person moves the widget again would put the widget back where it was."""
    ss = st.session_state
    if key in ss and valid(ss[key]):
        return ss[key]
    ss[key] = value
    return value


def keep(key: str, default: Any, valid: Callable[[Any], bool] = lambda v: True) -> Any:
    """:func:`bind` for a page's own setting (results count, filters…): remembered across page switches."""
    kept = st.session_state.setdefault(KEPT_KEY, {})
    value = kept.get(key, default)
    value = bind(key, value if valid(value) else default, valid)
    kept[key] = value
    return value


def choose_catalog(key: str) -> None:
    """Make ``key`` the state's catalog on the next run (after an import, say): the sidebar's picker, still
    showing the previous one, is re-seeded from the state."""
    app_state().catalog = key
    st.session_state.pop("vps_catalog", None)
