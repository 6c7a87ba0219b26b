"""open_clip image and text towers: a pretrained tag (online machine), a local checkpoint, or random."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from core.embedding.base import Embedder

CONFIG_DIR = Path(__file__).parent / "model_configs"
_registered = False


def register_configs() -> None:
    """Add this project's model configs (e.g. the tiny ``vps-tiny-vit`` used in tests) to open_clip."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


class OpenClipEmbedder(Embedder):
    """``open_clip:<arch>:<pretrained>`` where pretrained is a tag (e.g. ``laion2b_s34b_b79k``), a path
    to a checkpoint file, or ``random`` (a fixed-seed random initialisation, for tests only)."""

    supports_text = True

    def __init__(self, arch: str, pretrained: str = "random"):
        import open_clip

        register_configs()
        if arch not in open_clip.list_models():
            raise ValueError(f"unknown open_clip architecture {arch!r}")
        weights: str | None = pretrained
        extra: dict = {}
        if pretrained in ("", "random", "none"):
            weights = None
        elif _looks_like_path(pretrained):
            if not Path(pretrained).is_file():
                raise ValueError(f"open_clip checkpoint not found: {pretrained}")
            weights = str(Path(pretrained).resolve())
        elif pretrained not in open_clip.list_pretrained_tags_by_model(arch):
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
            raise ValueError(f"open_clip {arch} has no pretrained tag {pretrained!r} (tags: {tags})")
        elif (cached := cached_weights(arch, pretrained)) is not None:  # no network round trip for cached weights
            cfg = open_clip.get_pretrained_cfg(arch, pretrained)
            weights, extra = str(cached), {"image_mean": cfg.get("mean"), "image_std": cfg.get("std"),
                                           "image_interpolation": cfg.get("interpolation"),
                                           "image_resize_mode": cfg.get("resize_mode")}
        try:
            with torch.random.fork_rng(devices=[]):  # ``random`` names one model: the same weights in every process
                torch.manual_seed(0)
                model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=weights, device="cpu",
                                                                             **extra)
        except Exception as e:  # noqa: BLE001 - network or file errors become one clear line
            raise ValueError(f"could not load open_clip {arch}:{pretrained}: {type(e).__name__}: {e}") from None
        model.eval()
        self.model, self._preprocess = model, preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.spec = f"open_clip:{arch}:{pretrained}"
        self.image_size = int(model.visual.image_size[0] if isinstance(model.visual.image_size, tuple)
                              else model.visual.image_size)
        with torch.inference_mode():
            self.dim = int(model.encode_image(torch.zeros(1, 3, self.image_size, self.image_size)).shape[-1])

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return self._preprocess(img)

    def forward_images(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(batch)

    def forward_text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(list(texts)))


def cached_weights(arch: str, tag: str) -> Path | None:
    """The local file of open_clip's pretrained ``arch:tag`` weights when a download left them on this machine
    (Hugging Face hub cache, or ``~/.cache/clip``), else None. Never downloads."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if cfg.get("file"):
        return Path(cfg["file"]) if Path(cfg["file"]).is_file() else None
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo, name = os.path.split(cfg["hf_hub"])
        for fname in [name] if name else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]:
            got = try_to_load_from_cache(repo, fname)
            if isinstance(got, str) and Path(got).is_file():
                return Path(got)
    if cfg.get("url"):
        p = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        return p if p.is_file() else None
    return None


def _looks_like_path(s: str) -> bool:
    return "/" in s or "\\" in s or s.endswith((".pt", ".pth", ".bin", ".safetensors"))
