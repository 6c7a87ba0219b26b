"""One factory, ``load_embedder(spec)``, over small backend classes.

Specs:
- ``efficientnet-lite0`` (offline default), ``efficientnet-lite1``, ``efficientnet-lite2``
- ``open_clip:<arch>:<pretrained tag | checkpoint path | random>``
- ``<base spec>+head:<model dir>``: a trained projection head on top of a base embedder
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .base import Embedder, normalize

DEFAULT_SPEC = "efficientnet-lite0"

_BUILDERS: dict[str, Callable[[str], Embedder]] = {}
_cache: dict[str, Embedder] = {}
_lock = threading.Lock()


def register(prefix: str):
    """Register a builder for specs starting with ``prefix``."""

    def deco(fn: Callable[[str], Embedder]):
        _BUILDERS[prefix] = fn
        return fn

    return deco


@register("efficientnet-lite")
def _efficientnet(spec: str) -> Embedder:
    from .efficientnet import EfficientNetLiteEmbedder

    return EfficientNetLiteEmbedder(spec)


@register("open_clip:")
def _open_clip(spec: str) -> Embedder:
    from .openclip import OpenClipEmbedder

    parts = spec.split(":", 2)
    if len(parts) < 2 or not parts[1]:
        raise ValueError("open_clip spec is open_clip:<arch>:<pretrained tag | checkpoint path | random>")
    return OpenClipEmbedder(parts[1], parts[2] if len(parts) == 3 else "random")


def _build(spec: str) -> Embedder:
    if "+head:" in spec:
        from .head import HeadEmbedder

        base, model_dir = spec.split("+head:", 1)
        return HeadEmbedder(load_embedder(base), model_dir)
    for prefix, fn in _BUILDERS.items():
        if spec.startswith(prefix):
            return fn(spec)
    raise ValueError(f"unknown embedder spec {spec!r}; try {DEFAULT_SPEC} or open_clip:<arch>:<pretrained>")


def load_embedder(spec: str = DEFAULT_SPEC, *, cache: bool = True) -> Embedder:
    """Build (or reuse) the embedder named by ``spec``. Raises ``ValueError`` for a bad spec."""
    spec = spec.strip()
    if not cache:
        return _build(spec)
    with _lock:
        if spec not in _cache:
            _cache[spec] = _build(spec)
        return _cache[spec]


__all__ = ["DEFAULT_SPEC", "Embedder", "load_embedder", "normalize", "register"]
