"""``<base spec>+head:<model dir>``: a base embedder followed by a trained projection head.

The model dir holds ``model.safetensors`` (the head's weights, tensors only; with ``"tune": N`` in the config
also the fine-tuned last N backbone stages, as ``top.*`` tensors) and ``config.json`` (base spec, dims, loss,
data fingerprint, test-time flip; read and found by :mod:`core.embedding.head_config`, without torch). The
weights' digest is part of :meth:`info`, so an index built with an older head in the same folder is detected as
stale.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.embedding.base import Embedder, normalize
from core.embedding.head_config import TOP_PREFIX, WEIGHTS, read_config


def load_head_state(model_dir: Path) -> dict[str, torch.Tensor]:
    """Tensors only: safetensors, or a ``torch.save``d state dict read with ``weights_only=True``."""
    if (model_dir / WEIGHTS).is_file():
        from safetensors.torch import load_file

        return load_file(model_dir / WEIGHTS)
    if (model_dir / "model.pt").is_file():
        return torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)
    raise ValueError(f"{model_dir}: no {WEIGHTS} (train one: python -m core train-metric ... --out {model_dir})")


class ProjectionHead(nn.Module):
    """MLP ``in_dim -> hidden -> out_dim`` with a linear shortcut; outputs are L2-normalised by the caller."""

    def __init__(self, in_dim: int, out_dim: int = 256, hidden: int = 1024, dropout: float = 0.1):
        super().__init__()
        self.in_dim, self.out_dim, self.hidden = in_dim, out_dim, hidden
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))
        self.shortcut = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x) + self.shortcut(x)

    def config(self) -> dict:
        return {"in_dim": self.in_dim, "out_dim": self.out_dim, "hidden": self.hidden}


class HeadEmbedder(Embedder):
    def __init__(self, base: Embedder, model_dir: str | Path, *, tta_flip: bool | None = None):
        self.model_dir = Path(model_dir).expanduser()
        self.config = read_config(self.model_dir)
        head_cfg = self.config["head"]
        if self.config["base"] != base.spec or head_cfg["in_dim"] != base.dim:
            raise ValueError(f"{self.model_dir} was trained on {self.config['base']} "
                             f"({head_cfg['in_dim']}-d), not {base.spec}; use {self.config['base']}+head:...")
        self.base = base
        self.head = ProjectionHead(head_cfg["in_dim"], head_cfg["out_dim"], head_cfg["hidden"], dropout=0.0)
        #: the embedder whose (cached) vectors :meth:`project` takes: the base, or the frozen part below the
        #: fine-tuned stages
        self.source: Embedder = base
        self.top: nn.Module | None = None
        try:
            state = load_head_state(self.model_dir)
            if self.config.get("tune", 0):
                from core.embedding.tuned import StageTap, TunedTop

                self.source = StageTap(base, self.config["tune"])
                self.top = TunedTop(self.source)
                self.top.load_state_dict({k[len(TOP_PREFIX):]: v for k, v in state.items() if k.startswith(TOP_PREFIX)})
                state = {k: v for k, v in state.items() if not k.startswith(TOP_PREFIX)}
            self.head.load_state_dict(state)
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - a damaged weights file is one line, whatever the reader raises
            raise ValueError(f"{self.model_dir}: weights unusable with config.json "
                             f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"[:300]) from None
        self.head.eval()
        self.tta_flip = bool(self.config.get("tta_flip", False)) if tta_flip is None else tta_flip
        self.query_zooms = tuple(float(z) for z in self.config.get("query_zooms", [1.0]))
        self.spec = f"{base.spec}+head:{model_dir}"
        self.dim = int(head_cfg["out_dim"])
        self.image_size = base.image_size
        self.supports_text = False
        wfile = self.model_dir / WEIGHTS
        self.weights_digest = hashlib.sha1(wfile.read_bytes()).hexdigest()[:16] if wfile.is_file() else ""

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        return self.base.preprocess(img)

    def pixels(self, img: Image.Image) -> np.ndarray:
        return self.base.pixels(img)

    def project(self, source_vectors: torch.Tensor) -> torch.Tensor:
        """Head on vectors of :attr:`source` (base features, normalised here, or tap vectors): what training saw."""
        x = source_vectors.float() if self.top is None else self.top(source_vectors)
        return self.head(F.normalize(x, dim=-1))

    def forward_images(self, batch: torch.Tensor) -> torch.Tensor:
        out = F.normalize(self.project(self.source.forward_images(batch)), dim=-1)
        if self.tta_flip:  # average with the mirrored view
            out = out + F.normalize(self.project(self.source.forward_images(batch.flip(-1))), dim=-1)
        return out

    @torch.inference_mode()
    def embed_tensors(self, batch: torch.Tensor) -> np.ndarray:
        """The source (the base, or the frozen part below fine-tuned stages) runs its own (ONNX) path."""
        views = [batch, batch.flip(-1)] if self.tta_flip else [batch]
        out = sum(F.normalize(self.project(torch.from_numpy(self.source.embed_tensors(v))), dim=-1) for v in views)
        return normalize(out.numpy())

    @property
    def parallel_batches(self) -> bool:
        return getattr(self.source, "parallel_batches", False)

    def info(self) -> dict:
        return {**super().info(), "base": self.base.spec, "weights": self.weights_digest, "tta_flip": self.tta_flip,
                **({"tune": self.config["tune"]} if self.top is not None else {}),
                **({"query_zooms": list(self.query_zooms)} if self.query_zooms != (1.0,) else {})}
