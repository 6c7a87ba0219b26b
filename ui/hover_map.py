"""The embedding map as a small Streamlit component: plotly in an iframe, with the hovered point's picture and
title shown beside the chart (no click needed); a click returns the point to Python.

Plotly cannot put an image in a hover label, and ``st.plotly_chart`` reports clicks and selections but not
hovers, so the component draws the chart itself. It is served from a folder in the cache: its ``index.html``
(from ``ui/hover_map/``), plotly.js copied from the plotly package (no download) and one small JPEG per
mapped image, which the browser fetches only when that point is hovered.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import plotly
import plotly.colors as pc
import streamlit as st
import streamlit.components.v1 as components

from core.config.paths import cache_dir
from core.data.images import ImageError, open_image, thumbnail
from core.data.text import plain
from core.explore.map_view import MAX_GROUPS, PlacedQuery, esc, hover_text, point_groups
from ui.words import column_name

SOURCE = Path(__file__).parent / "hover_map" / "index.html"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
THUMB = 160
HEIGHT = 680
OTHER_COLOUR = "#b8b8b8"


def component_dir() -> Path:
    """The component's folder in the cache, with its page and plotly.js up to date."""
    d = cache_dir() / "ui" / "hover_map"
    (d / "thumbs").mkdir(parents=True, exist_ok=True)
    for src in (SOURCE, PLOTLY_JS):
        dst = d / src.name
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size or dst.read_bytes() != src.read_bytes():
            tmp = dst.with_suffix(".part")
            shutil.copyfile(src, tmp)
            tmp.replace(dst)
    return d


def thumb_name(path: str | Path) -> str | None:
    """The file name of an image's thumbnail (changes with the image), None when it cannot be read."""
    try:
        s = Path(path).stat()
    except OSError:
        return None
    return hashlib.sha1(f"{path}|{s.st_mtime_ns}|{s.st_size}".encode()).hexdigest()[:20] + ".jpg"


def ensure_thumbs(paths: list[str], folder: Path) -> dict[str, str]:
    """Image path -> its thumbnail's file name under ``folder``, writing the missing ones (with a progress bar)."""
    names = {p: n for p in dict.fromkeys(paths) if (n := thumb_name(p))}
    todo = [p for p, n in names.items() if not (folder / n).is_file()]
    bar = st.progress(0.0, text=f"Making {len(todo):,} map thumbnails (once per image)…") if todo else None
    for i, p in enumerate(todo):
        try:
            img = thumbnail(open_image(p, draft_size=THUMB), THUMB)
        except (ImageError, OSError):
            names.pop(p)
            continue
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=80)
        tmp = folder / f".{names[p]}.part"
        tmp.write_bytes(buf.getvalue())
        tmp.replace(folder / names[p])
        if bar and (i % 20 == 0 or i == len(todo) - 1):
            bar.progress((i + 1) / len(todo), text=f"Making map thumbnails {i + 1:,}/{len(todo):,}…")
    if bar:
        bar.empty()
    return names


def _placed(q: PlacedQuery | None, index_of: dict[str, int]) -> dict | None:
    if q is None:
        return None
    return {"x": q.xy[0], "y": q.xy[1],
            "neighbours": [{"x": x, "y": y, "i": index_of.get(h.image, -1),
                            "hover": f"#{h.rank} {esc(h.product_id)} (similarity {h.score:.3f})"}
                           for h, (x, y) in q.neighbours]}


def map_data(rows: list[dict], colour: str, thumbs: dict[str, str], query: PlacedQuery | None = None,
             refined: PlacedQuery | None = None) -> dict:
    """What the component draws: points (raw text for the side panel, escaped text for plotly's hover), legend
    groups with their colours, and the placed queries."""
    palette = pc.qualitative.Plotly + pc.qualitative.Set3 + pc.qualitative.Pastel
    points = [{"x": r["x"], "y": r["y"], "product_id": plain(r["product_id"]), "title": plain(r.get("title") or ""),
               "category": plain(r.get("category") or ""), "hover": hover_text(r),
               "thumb": f"thumbs/{thumbs[r['image']]}" if r["image"] in thumbs else ""} for r in rows]
    by = point_groups(rows, colour)
    grouped = len(by) == MAX_GROUPS and next(reversed(by)).startswith("other (")  # the rarer values, in grey
    groups = [{"name": esc(name), "idx": idx,
               "colour": OTHER_COLOUR if grouped and i == len(by) - 1 else palette[i % len(palette)]}
              for i, (name, idx) in enumerate(by.items())]
    index_of = {r["image"]: i for i, r in enumerate(rows)}
    data = {"points": points, "groups": groups, "legend": esc(column_name(colour)), "height": HEIGHT,
            "query": _placed(query, index_of), "refined": _placed(refined, index_of)}
    data["version"] = hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    return data


def hover_map(rows: list[dict], colour: str, *, query: PlacedQuery | None = None,
              refined: PlacedQuery | None = None, key: str = "hover_map") -> dict | None:
    """Draw the map; returns the last clicked point as ``{"i": row index, "n": click count}`` (None before)."""
    folder = component_dir()
    thumbs = ensure_thumbs([r["image"] for r in rows], folder / "thumbs")
    render = components.declare_component("hover_map", path=str(folder))
    value = render(**map_data(rows, colour, thumbs, query, refined), key=key, default=None)
    return value if isinstance(value, dict) else None
