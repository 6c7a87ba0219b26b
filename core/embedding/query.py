"""A shopper's query: an image (optionally cropped to the product), a text, or both -> one query vector."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from core.config.progress import Progress
from core.data.images import ImageSource, read_source
from core.embedding import Embedder, normalize
from core.embedding.batch import embed_sources
from core.embedding.decode import Crop, QueryError, decode, zoom

#: longest side of the copy of a query photo kept for the pixel-based attribute scorers
SMALL_SIDE = 256


@dataclass(frozen=True, eq=False)
class Query:
    """One query, ready to search: its unit vector and a small copy of the (cropped) photo, if any."""

    vector: np.ndarray
    image: Image.Image | None = None
    name: str = ""
    text: str = ""
    crop: Crop = field(default_factory=Crop)
    letterboxed: bool = False  # the crop was padded square before embedding (see decode.letterbox)


def small_copy(img: Image.Image) -> Image.Image:
    out = img.copy()
    out.thumbnail((SMALL_SIDE, SMALL_SIDE))
    return out

def query_vector(embedder: Embedder, image: Image.Image | None = None, text: str = "",
                 text_weight: float = 0.5, views: Sequence[Image.Image] = ()) -> np.ndarray:
    """Unit query vector: the image's (the mean of ``views`` of it where given), the text's, or
    ``(1-w)*image + w*text`` for both."""
    text = text.strip()
    if text and not embedder.supports_text:
        raise QueryError(f"{embedder.spec} cannot read text; pick an open_clip embedder for text queries")
    if image is None and not text:
        raise QueryError("give a photo (or, with an open_clip embedder, a text) to search")
    parts = []
    if image is not None:
        vec = normalize(embedder.embed_images(list(views)).sum(0)) if views else embedder.embed_images([image])[0]
        parts.append((1.0 - text_weight if text else 1.0, vec))
    if text:
        parts.append((text_weight if image is not None else 1.0, embedder.embed_text([text])[0]))
    return normalize(sum(w * v for w, v in parts))


def embed_query(embedder: Embedder, source: ImageSource | None = None, *, crop: Crop | None = None,
                letterboxed: bool = False, text: str = "", text_weight: float = 0.5, name: str = "") -> Query:
    """The one way from a photo (path, bytes, upload, PIL image; optionally cropped, and padded square with
    ``letterboxed`` so a wide product is not cut) and/or a text to a :class:`Query`. Raises
    :class:`~core.data.images.ImageError` or :class:`QueryError` with one line."""
    c = crop or Crop()
    zooms = query_zooms(embedder, c, letterboxed)
    if zooms and source is not None:
        source = read_source(source)  # an upload is read once, then decoded once per zoom
    image = decode(source, embedder.image_size, c, letterboxed=letterboxed) if source is not None else None
    views = [] if image is None else [image if z == 1.0 else decode(source, embedder.image_size, zoom(z))
                                      for z in zooms]
    vector = query_vector(embedder, image, text, text_weight, views)
    return Query(vector, small_copy(image) if image is not None else None, name, text.strip(), c, letterboxed)


def query_zooms(embedder: Embedder, c: Crop | None = None, letterboxed: bool = False) -> tuple[float, ...]:
    """The centre zooms a query is embedded as (empty: the photo as it is): the embedder's, for a whole photo
    only; a crop or a found box is already the product."""
    zooms = tuple(getattr(embedder, "query_zooms", (1.0,)))
    return zooms if zooms != (1.0,) and (c is None or c.is_full) and not letterboxed else ()


def embed_queries(embedder: Embedder, sources: Sequence[ImageSource], *, progress: Progress | bool = False,
                  desc: str = "queries", crops: Sequence[Crop | None] | None = None,
                  letterboxed: bool = False) -> tuple[list[Query | None], dict[int, str]]:
    """Many query photos (or crops of them: ``crops[i]``) through the batch embedder: the same decode and vectors
    as :func:`embed_query`. Returns one :class:`Query` per source (None where unusable) and the one-line reason
    per unusable source. A callable ``progress`` counts every image embedded, the zooms' passes included."""
    zooms = query_zooms(embedder, None, letterboxed) if crops is None or all(c is None or c.is_full for c in crops) \
        else ()
    if zooms:
        sources = [read_source(src) for src in sources]  # uploads are read once, then decoded once per view
    extra = [z for z in zooms if z != 1.0]  # a pass each, over the photos the first pass could read
    small: dict[int, Image.Image] = {}
    vecs, errors = embed_sources(embedder, sources, progress=_part(progress, 0, len(sources) * (1 + len(extra))),
                                 desc=desc, crops=crops, letterboxed=letterboxed,
                                 on_image=lambda i, im: small.__setitem__(i, small_copy(im)))
    if zooms:  # the same views as embed_query: each zoom through the batch embedder, averaged
        ok = [i for i in range(len(sources)) if i not in errors]
        whole = len(sources) + len(extra) * len(ok)
        total = np.zeros((len(ok), embedder.dim), np.float32)
        bad: set[int] = set()
        start = len(sources)
        for z in zooms:
            zv, zerr = (vecs, {}) if z == 1.0 else embed_sources(
                embedder, [sources[i] for i in ok], desc=f"{desc} (zoom {z})", crops=[zoom(z)] * len(ok),
                progress=_part(progress, start, whole))
            start += len(ok) if z != 1.0 else 0
            total[[j for j in range(len(ok)) if j not in zerr]] += zv
            bad.update(zerr)
            errors.update({ok[j]: e for j, e in zerr.items()})
        vecs = normalize(total[[j for j in range(len(ok)) if j not in bad]])
    out: list[Query | None] = [None] * len(sources)
    it = iter(vecs)
    for i, src in enumerate(sources):
        if i not in errors:
            c = (crops[i] if crops is not None else None) or Crop()
            out[i] = Query(next(it), small[i], str(src) if not isinstance(src, bytes) else "", "", c, letterboxed)
    return out, errors


def _part(progress: Progress | bool, start: int, whole: int) -> Progress | bool:
    """``progress`` of one pass over a part of the work: its count moved on by ``start``, out of ``whole``
    (``True``, a tqdm bar, stays one bar per pass)."""
    if not callable(progress):
        return progress
    return lambda done, _total: progress(start + done, whole)
