"""Fine-tuning the last backbone stages on cached activations: equivalence before training, the saved model
(head + tuned stages in one safetensors) through ``load_embedder``, the cached and live paths agreeing, and a
gain over the frozen multi-scale base on held-out shop photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.embedding import load_embedder
from core.embedding.batch import embed_sources
from core.embedding.efficientnet import stage_maps
from core.embedding.tuned import StageTap, TunedTop
from core.metric.features import embed_cached
from core.metric.train import TrainConfig, train_head
from tests.test_metric import _val_recall, grocery_subset  # noqa: F401 - the 10-product subset fixture


def check_equivalence(tap: StageTap, batch: torch.Tensor) -> float:
    """Largest difference between the untrained top on tap vectors and the base's ``:ms`` read-out."""
    with torch.inference_mode():
        ref = torch.cat([F.normalize(m.mean(dim=(2, 3)), dim=-1) for m in stage_maps(tap.base.net, batch)], dim=1)
        return float((TunedTop(tap)(tap.forward_images(batch)) - ref).abs().max())



@pytest.fixture(scope="module")
def ms():
    return load_embedder("efficientnet-lite0:ms")


@pytest.mark.parametrize("tune", [1, 2])
def test_untrained_top_on_cached_activations_is_the_frozen_readout(ms, tune):
    tap = StageTap(ms, tune)
    seeded = torch.Generator().manual_seed(0)  # the same input whichever tests ran before (not the global RNG)
    x = torch.randn(2, 3, ms.image_size, ms.image_size, generator=seeded)
    assert check_equivalence(tap, x) < 1e-4
    with torch.no_grad():
        live = tap.forward_images(x).numpy()
    np.testing.assert_allclose(tap.embed_tensors(x), live, atol=1e-3)  # ONNX Runtime (or torch) path
    top = TunedTop(tap)
    top.train()
    assert not any(m.training for m in top.modules())  # batch-norm statistics stay ImageNet's


@pytest.fixture(scope="module")
def tuned(grocery_subset, ms, tmp_path_factory):  # noqa: F811
    cfg = TrainConfig(epochs=8, patience=8, tune_epochs=4, catalog_augs=2, view_augs=1, batch_size=40, tune=1)
    return train_head(ms, grocery_subset / "catalog", grocery_subset / "views", tmp_path_factory.mktemp("tuned"),
                      cfg)


def test_tuned_stages_load_from_the_spec_and_beat_the_frozen_base(tuned, grocery_subset, ms):  # noqa: F811
    from safetensors.torch import load_file

    emb = load_embedder(tuned.spec)
    cfg = json.loads((tuned.model_dir / "config.json").read_text())
    assert cfg["tune"] == 1 and emb.info()["tune"] == 1 and emb.top is not None
    assert any(k.startswith("top.") for k in load_file(tuned.model_dir / "model.safetensors"))
    before, after = _val_recall(ms, grocery_subset), _val_recall(emb, grocery_subset)
    assert after["recall@1"] > before["recall@1"] + 0.05, (before, after)
    # the tuned stages moved away from ImageNet's
    frozen = TunedTop(StageTap(ms, 1)).state_dict()
    assert any(not torch.equal(frozen[k], v) for k, v in emb.top.state_dict().items())


def test_tuned_live_path_matches_cached_path(tuned, grocery_subset):  # noqa: F811
    from core.data.catalog import load_catalog

    emb = load_embedder(tuned.spec)
    cat = load_catalog(grocery_subset / "catalog")
    paths = [cat.path(r) for r in cat.rows[:4]]
    live, _ = embed_sources(emb, paths)
    cached, _ = embed_cached(emb, paths)
    np.testing.assert_allclose(live, cached, atol=2e-3)
    torch_path = emb.forward_images(torch.stack([emb.preprocess(Image.open(p).convert("RGB")) for p in paths]))
    np.testing.assert_allclose(torch.nn.functional.normalize(torch_path, dim=-1).detach().numpy(), live, atol=2e-3)


def test_frozen_bases_other_than_ms_train_a_head_only(grocery_subset, embedder, tmp_path):  # noqa: F811
    res = train_head(embedder, grocery_subset / "catalog", grocery_subset / "views", tmp_path / "m",
                     TrainConfig(epochs=1, catalog_augs=1, view_augs=0, tta_flip=False, batch_size=40, tune=1))
    assert res.tune == 0 and json.loads((tmp_path / "m" / "config.json").read_text())["tune"] == 0
