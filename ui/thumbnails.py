"""Cached JPEG thumbnails of catalog and query images."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.data.images import ImageError


@st.cache_data(show_spinner=False, max_entries=4096)
def _thumb(path: str, mtime: float, size: int) -> bytes | None:
    import io

    from core.data.images import open_image, thumbnail

    try:
        img = thumbnail(open_image(path, draft_size=size), size)
    except (ImageError, OSError):
        return None
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def thumbnail_bytes(path: str | Path, size: int = 256) -> bytes | None:
    """A cached JPEG thumbnail of an image file (None when it cannot be read)."""
    p = Path(path)
    try:
        mtime = p.stat().st_mtime
    except OSError:
        return None
    return _thumb(str(p), mtime, size)
