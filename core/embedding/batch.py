"""Batched embedding of image files: threaded decode + preprocessing (numpy arrays), one forward pass per batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from core.config.progress import Progress
from core.data.images import ImageError, ImageSource
from core.embedding import Embedder
from core.embedding.decode import Crop, decode

#: ``(source number, decoded image) -> CHW float32 array``, as :meth:`~core.embedding.Embedder.pixels` makes one
Preprocess = Callable[[int, Image.Image], np.ndarray]


def _load(embedder: Embedder, src: ImageSource, i: int = 0,
          on_image: Callable[[int, Image.Image], None] | None = None, preprocess: Preprocess | None = None,
          decode_size: int | None = None, crop: Crop | None = None, letterboxed: bool = False) -> np.ndarray | str:
    try:
        img = decode(src, decode_size or embedder.image_size, crop, letterboxed=letterboxed)
        if on_image is not None:
            on_image(i, img)
        return preprocess(i, img) if preprocess is not None else embedder.pixels(img)
    except ImageError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - any decoder failure is reported, never fatal
        return f"unreadable image: {type(e).__name__}"


def embed_sources(
    embedder: Embedder,
    sources: Sequence[ImageSource],
    *,
    batch_size: int = 32,
    workers: int | None = None,
    progress: Progress | bool = False,
    desc: str = "embedding",
    on_image: Callable[[int, Image.Image], None] | None = None,
    preprocess: Preprocess | None = None,
    decode_size: int | None = None,
    crops: Sequence[Crop | None] | None = None,
    letterboxed: bool = False,
) -> tuple[np.ndarray, dict[int, str]]:
    """Embed many images (the one batch embedder). Returns ``(vectors, errors)``: vectors has one row per usable
    source (in order), errors maps the index of each unusable source to a one-line reason. ``on_image(i, img)``
    sees each decoded image (from worker threads); ``preprocess(i, img)``, when given, replaces
    ``embedder.pixels`` (e.g. an augmented or mirrored view of source ``i``); ``decode_size`` (default the
    embedder's input size) is the least number of pixels a reduced JPEG decode keeps across; ``crops[i]`` and
    ``letterboxed`` are those of :func:`~core.embedding.decode.decode`."""
    from core.config.runtime import configure, cpu_count

    configure()
    workers = workers or min(4, cpu_count())
    if crops is not None and len(crops) != len(sources):
        raise ValueError("give one crop (or None) per source")

    def load(n: int) -> np.ndarray | str:
        return _load(embedder, sources[n], n, on_image, preprocess, decode_size,
                     crops[n] if crops is not None else None, letterboxed)

    out: list[np.ndarray] = []
    errors: dict[int, str] = {}
    bar = tqdm(total=len(sources), desc=desc, unit="img", disable=progress is not True)
    starts = list(range(0, len(sources), batch_size))

    with ThreadPoolExecutor(workers) as pool:
        if getattr(embedder, "parallel_batches", False):
            # single-threaded sessions: each worker decodes and embeds whole batches, no thread hand-offs
            def whole(start: int) -> tuple[int, tuple]:
                loaded = [load(n) for n in range(start, min(start + batch_size, len(sources)))]
                arrays = [t for t in loaded if not isinstance(t, str)]
                return start, (loaded, embedder.embed_pixels(np.stack(arrays)) if arrays else None)

            results = pool.map(whole, starts)
        else:

            def submit(start: int) -> list:
                return [pool.submit(load, n) for n in range(start, min(start + batch_size, len(sources)))]

            def pipelined():
                pending = submit(starts[0]) if starts else []
                for n, start in enumerate(starts):
                    loaded = [f.result() for f in pending]
                    # decode the next batch while this one runs through the network
                    pending = submit(starts[n + 1]) if n + 1 < len(starts) else []
                    arrays = [t for t in loaded if not isinstance(t, str)]
                    yield start, (loaded, embedder.embed_pixels(np.stack(arrays)) if arrays else None)

            results = pipelined()
        try:
            for start, (loaded, vecs) in results:
                for i, t in enumerate(loaded):
                    if isinstance(t, str):
                        errors[start + i] = t
                if vecs is not None:
                    out.append(vecs)
                bar.update(len(loaded))
                if callable(progress):
                    progress(min(start + batch_size, len(sources)), len(sources))
        except BaseException:  # failed or interrupted (a stopped page): the batches not started are dropped
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    bar.close()
    vecs = np.concatenate(out) if out else np.zeros((0, embedder.dim), np.float32)
    return vecs.astype(np.float32, copy=False), errors
