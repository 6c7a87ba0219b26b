"""Pooled read-outs of EfficientNet-Lite (``:gem``, ``:ms``, ``:msgem``) and heads trained on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.embedding import load_embedder
from core.embedding.batch import embed_sources
from core.embedding.efficientnet import pooled_maps, taps
from core.embedding.head import HeadEmbedder
from core.metric.features import cached_features, embed_cached
from tests.helpers import write_head


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("pool-imgs")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = d / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_pooled_readouts_share_one_pass_and_match_the_specs(embedder, images):
    x = torch.stack([embedder.preprocess(Image.open(p).convert("RGB")) for p in images])
    with torch.inference_mode():
        maps = pooled_maps(embedder.net, x)
        np.testing.assert_allclose(maps["avg"].numpy(), embedder.forward_images(x).numpy(), atol=1e-5)
    assert taps(embedder.net) == [10, 14, 15]  # the last blocks of stages 5, 6, 7
    for pool, dim in (("gem", 1280), ("ms", 1904), ("msgem", 1904)):
        emb = load_embedder(f"efficientnet-lite0:{pool}")
        assert emb.dim == dim and emb.spec == f"efficientnet-lite0:{pool}" and emb.info()["dim"] == dim
        got = emb.embed_images([Image.open(p).convert("RGB") for p in images])  # ONNX Runtime or torch
        ref = torch.nn.functional.normalize(maps[pool], dim=-1).numpy()
        np.testing.assert_allclose(got, ref, atol=1e-4)
    ms = maps["ms"].numpy()  # four unit-length pieces
    np.testing.assert_allclose(np.linalg.norm(ms[:, :112], axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ms, axis=1), 2, atol=1e-4)


def test_bad_pooling_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown pooling"):
        load_embedder("efficientnet-lite0:max")


def test_head_on_multiscale_features_matches_the_cached_training_features(images, tmp_path):
    """The head embedder computes at query time exactly the features training read from the cache."""
    base = load_embedder("efficientnet-lite0:ms")
    write_head(tmp_path, base.spec, base.dim, tta_flip=True)
    emb = load_embedder(f"efficientnet-lite0:ms+head:{tmp_path}")
    assert isinstance(emb, HeadEmbedder) and emb.base.spec == "efficientnet-lite0:ms"
    feats, _ = cached_features(base, images)
    live_base, _ = embed_sources(base, images)
    np.testing.assert_allclose(feats, live_base, atol=1e-4)
    live, _ = embed_sources(emb, images)
    cached, _ = embed_cached(emb, images)
    np.testing.assert_allclose(live, cached, atol=1e-4)
    with pytest.raises(ValueError, match="trained on"):
        HeadEmbedder(load_embedder("efficientnet-lite0"), tmp_path)
