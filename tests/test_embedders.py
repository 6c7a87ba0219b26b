"""Embedders: shapes, unit length, determinism, the spec factory and robust image opening."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.embedding import load_embedder
from core.embedding.batch import embed_sources
from core.embedding.query import embed_query


def test_efficientnet_shapes_and_normalisation(embedder):
    imgs = [Image.new("RGB", (300, 200), c) for c in [(255, 0, 0), (0, 255, 0), (10, 10, 10)]]
    v = embedder.embed_images(imgs)
    assert v.shape == (3, 1280) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embedder.embed_images(imgs[:1]), v[:1], atol=1e-5)
    assert embedder.info() == {"spec": "efficientnet-lite0", "dim": 1280, "image_size": 224}
    assert not embedder.supports_text
    with pytest.raises(NotImplementedError, match="no text tower"):
        embedder.embed_text(["red shoe"])


def test_efficientnet_preprocessing_matches_the_documented_formula(embedder):
    img = Image.new("RGB", (224, 224), (127, 255, 0))
    t = embedder.preprocess(img)
    assert t.shape == (3, 224, 224)
    torch.testing.assert_close(t[:, 0, 0], torch.tensor([0.0, 1.0, -127 / 128]))
    np.testing.assert_array_equal(embedder.pixels(img), t.numpy())  # the batch path's numpy input is the same


def test_the_onnx_cache_key_reads_torchs_own_version_without_importing_it():
    from core.embedding.onnx import torch_version

    assert torch_version() == torch.__version__


def test_feature_is_the_pooled_backbone_without_head(embedder):
    x = embedder.preprocess(Image.new("RGB", (224, 224), (90, 30, 200)))[None]
    with torch.inference_mode():
        feats = embedder.net.extract_features(x).mean(dim=(2, 3))
    ref = feats / feats.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(embedder.embed_tensors(x), ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(embedder.embed_pixels(x.numpy()), ref.numpy(), atol=1e-5)


def test_open_clip_tiny_config_image_and_text(tiny_clip):
    v = tiny_clip.embed_images([Image.new("RGB", (80, 50), (0, 0, 255))] * 2)
    t = tiny_clip.embed_text(["a green dress with stars", "a red mug"])
    assert v.shape == (2, 32) and t.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(np.vstack([v, t]), axis=1), 1.0, atol=1e-5)
    assert tiny_clip.supports_text and tiny_clip.spec == "open_clip:vps-tiny-vit:random"


def test_open_clip_random_names_one_model_and_leaves_the_global_generator_alone(tiny_clip):
    """A cached index records the spec; ``random`` must mean the same weights in every process."""
    from core.embedding.openclip import OpenClipEmbedder

    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    again = OpenClipEmbedder("vps-tiny-vit", "random")
    assert torch.equal(torch.rand(1), expected)
    for a, b in zip(again.model.state_dict().values(), tiny_clip.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_open_clip_local_checkpoint_round_trip(tiny_clip, tmp_path):
    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny_clip.model.state_dict(), ckpt)
    loaded = load_embedder(f"open_clip:vps-tiny-vit:{ckpt}")
    img = [Image.new("RGB", (64, 64), (10, 200, 30))]
    np.testing.assert_allclose(loaded.embed_images(img), tiny_clip.embed_images(img), atol=1e-5)


@pytest.mark.parametrize("spec, msg", [
    ("resnet-9000", "unknown embedder"),
    ("efficientnet-lite7", "unknown EfficientNet-Lite"),
    ("open_clip:", "open_clip spec"),
    ("open_clip:NoSuchArch:random", "unknown open_clip architecture"),
    ("open_clip:vps-tiny-vit:no_such_tag", "no pretrained tag"),
    ("open_clip:vps-tiny-vit:/nonexistent/ckpt.pt", "checkpoint not found"),
])
def test_bad_specs_are_clear_errors(spec, msg):
    with pytest.raises(ValueError, match=msg):
        load_embedder(spec)


def test_embed_sources_reports_bad_files_and_keeps_order(embedder, tmp_path):
    good = tmp_path / "g.png"
    Image.new("RGB", (50, 50), (255, 0, 0)).save(good)
    bad = tmp_path / "b.jpg"
    bad.write_text("not an image")
    vecs, errors = embed_sources(embedder, [good, bad, good], batch_size=2)
    assert vecs.shape == (2, 1280)
    assert list(errors) == [1] and "not an image" in errors[1]
    np.testing.assert_allclose(vecs[0], embed_query(embedder, good).vector, atol=1e-5)
