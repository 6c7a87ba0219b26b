"""Small test doubles shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.data.catalog import Catalog
from core.embedding.base import Embedder


class PixelEmbedder(Embedder):
    """A cheap, deterministic embedder (8x8 colour thumbnail) for testing index logic quickly."""

    def __init__(self, spec: str = "test-pixels"):
        self.spec, self.dim, self.image_size = spec, 192, 8

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        arr = np.asarray(img.resize((8, 8), Image.BILINEAR), np.float32) / 255.0 - 0.5
        return torch.from_numpy(arr).permute(2, 0, 1)

    def forward_images(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.flatten(1) + 1e-3


def write_head(folder: Path, base_spec: str, in_dim: int, *, out_dim: int = 16, hidden: int = 32, seed: int = 0,
               **config) -> Path:
    """A randomly initialised projection head saved as ``train_head`` saves one (cheap: no training), with
    ``config`` added to its ``config.json``."""
    from safetensors.torch import save_file

    from core.embedding.head import ProjectionHead

    torch.manual_seed(seed)
    head = ProjectionHead(in_dim, out_dim, hidden)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"base": base_spec, "head": head.config(), **config}))
    return folder


def subset(cat: Catalog, product_ids: set[str]) -> Catalog:
    return Catalog(cat.root, [r for r in cat.rows if r.product_id in product_ids], [], cat.columns)


def milvus_server_uri() -> str:
    """The Milvus server the tests may use (``VPS_MILVUS_URI``: ``.ci/with-milvus`` starts one and sets it), or
    skip the test saying why (``pytest -rs`` prints it)."""
    import os

    import pytest

    uri = os.environ.get("VPS_MILVUS_URI", "").strip()
    if not uri:
        why = os.environ.get("VPS_MILVUS_UNAVAILABLE", "").strip()
        pytest.skip(f"no Milvus server: .ci/with-milvus could not start one: {why}" if why else
                    "no Milvus server: VPS_MILVUS_URI is not set (run the tests under .ci/with-milvus, which "
                    "starts one, or point it at a server of your own: docs/scaling.md)")
    return uri


def milvus_location(kind: str, folder: Path, name: str = "idx") -> str:
    """A fresh Milvus location of ``kind``: ``milvus-lite`` (a store in ``folder``) or ``milvus-server`` (a new
    collection on the server of :func:`milvus_server_uri`)."""
    import uuid

    if kind == "milvus-lite":
        return f"milvus-lite:{folder / name}.db"
    assert kind == "milvus-server", kind
    return f"{milvus_server_uri()}?collection={name}_{uuid.uuid4().hex[:10]}"


def cache_with_index(cache: Path, catalog_dir: Path, index) -> None:
    """Put a built index into an app cache as the app's own index of ``catalog_dir`` (so the app does not rebuild
    it): its generation copied under :func:`core.index.workspace.index_dir_for`, named by ``CURRENT``."""
    import shutil

    import pytest

    from core.index.workspace import index_dir_for

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VPS_CACHE", str(cache))
        d = index_dir_for(catalog_dir, index.spec)
    d.mkdir(parents=True)
    shutil.copytree(index.gen, d / index.gen.name)
    (d / "CURRENT").write_text(index.gen.name)
