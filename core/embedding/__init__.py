"""One factory, ``load_embedder(spec)``, over small backend classes.

Specs:
- ``efficientnet-lite0`` (offline default), ``efficientnet-lite1``, ``efficientnet-lite2``
- ``efficientnet-lite0:int8`` (any of them with ``:int8``): the same network quantized to int8 by ONNX Runtime
- ``open_clip:<arch>:<pretrained tag | checkpoint path | random>``
- ``<base spec>+head:<model dir>``: a trained projection head on top of a base embedder

:func:`available_embedders` lists the specs that can load on this machine (no download).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from core.config.defaults import DEFAULT_SPEC
from core.embedding.available import EmbedderChoices, available_embedders
from core.embedding.base import Embedder, normalize

_BUILDERS: dict[str, Callable[[str], Embedder]] = {}
_cache: dict[tuple, Embedder] = {}
_locks: dict[tuple, threading.Lock] = {}
_guard = threading.Lock()


def register(prefix: str):
    """Register a builder for specs starting with ``prefix``."""

    def deco(fn: Callable[[str], Embedder]):
        _BUILDERS[prefix] = fn
        return fn

    return deco


@register("efficientnet-lite")
def _efficientnet(spec: str) -> Embedder:
    from core.embedding.efficientnet import EfficientNetLiteEmbedder

    return EfficientNetLiteEmbedder(spec)


@register("open_clip:")
def _open_clip(spec: str) -> Embedder:
    from core.embedding.openclip import OpenClipEmbedder

    parts = spec.split(":", 2)
    if len(parts) < 2 or not parts[1]:
        raise ValueError("open_clip spec is open_clip:<arch>:<pretrained tag | checkpoint path | random>")
    return OpenClipEmbedder(parts[1], parts[2] if len(parts) == 3 else "random")


def _build(spec: str) -> Embedder:
    if "+head:" in spec:
        from core.embedding.head import HeadEmbedder

        base, model_dir = spec.split("+head:", 1)
        return HeadEmbedder(load_embedder(base), model_dir)
    for prefix, fn in _BUILDERS.items():
        if spec.startswith(prefix):
            return fn(spec)
    raise ValueError(f"unknown embedder spec {spec!r}; try {DEFAULT_SPEC} or open_clip:<arch>:<pretrained>")


def _key(spec: str) -> tuple:
    """Cache key: the spec, and for a trained head the size and time of its files (a retrained head is new)."""
    if "+head:" not in spec:
        return (spec,)
    base, model_dir = spec.split("+head:", 1)
    d = Path(model_dir).expanduser()
    files = sorted(f for f in d.iterdir() if f.is_file()) if d.is_dir() else []
    return (*_key(base), model_dir, tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))


def load_embedder(spec: str = DEFAULT_SPEC) -> Embedder:
    """Build (or reuse) the embedder named by ``spec``; raises ``ValueError`` for a bad spec.

    The one loader for the CLI, the app and the tests. Each spec is built under its own lock, so a slow or
    failing load (a ``+head:`` spec loads its base through this function too) blocks no other spec, and a
    failure is not cached."""
    spec = spec.strip()
    key = _key(spec)
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _cache:
            _cache[key] = _build(spec)
        return _cache[key]


__all__ = ["DEFAULT_SPEC", "Embedder", "EmbedderChoices", "available_embedders", "load_embedder", "normalize",
           "register"]
