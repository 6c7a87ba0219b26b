"""An int8 ONNX model of an image tower: the fp32 export quantized statically by ONNX Runtime, cached.

Recipe (:data:`RECIPE`): the fp32 ONNX export is pre-processed (shape inference, batch norms folded), then its
convolutions, their ReLU6 clips and the residual adds are quantized in QDQ format, with per-channel int8 weights
and uint8 activations whose ranges are the min/max seen on a fixed calibration set: every
:data:`CALIBRATION_EVERY`-th image of the sample catalog, decoded and preprocessed as catalog images are. A fixed
set makes the model, and so its vectors, a function of the spec alone: a query and the catalog it is searched
against always go through the same model.

The file is cached under ``cache_dir()/onnx`` beside a JSON record of what produced it (the fp32 model's
SHA-256, the calibration images' SHA-256, ONNX Runtime's and onnx's versions, the recipe); its name is a digest of
that record, so a change in any of them builds a new one (never downloaded) and the stale one is removed. The
calibration images' digest is itself recorded with their sizes and times (:func:`calibration_digest`), so a
warm load does not read them again.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.config.store import atomic_write

#: how the fp32 model is quantized; part of the cache key
RECIPE = {"format": "QDQ", "weights": "int8 per channel", "activations": "uint8", "calibration": "MinMax",
          "ops": ["Conv", "Clip", "Add"]}
#: every n-th image (in name order) of the sample catalog calibrates the activation ranges
CALIBRATION_EVERY = 4
CALIBRATION_BATCH = 8

Preprocess = Callable[[Path], np.ndarray]  # image file -> CHW float32, as the embedder feeds its network


def calibration_images() -> list[Path]:
    """The fixed calibration set: every :data:`CALIBRATION_EVERY`-th sample catalog image."""
    from core.config.paths import SAMPLE_CATALOG

    images = sorted((SAMPLE_CATALOG / "images").glob("*.jpg"))[::CALIBRATION_EVERY]
    if not images:
        raise ValueError(f"int8 models are calibrated on the sample catalog, which is missing at {SAMPLE_CATALOG}")
    return images


def files_digest(paths: list[Path]) -> str:
    """SHA-256 over the names and bytes of ``paths``, in order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def calibration_digest(images: list[Path]) -> str:
    """:func:`files_digest` of ``images``, recorded in ``cache_dir()/onnx/calibration.json`` with each file's path,
    size and modification time: a warm load takes it from there instead of reading the images again; a changed
    image (another size or time) is read again, so a stale model is still rebuilt."""
    from core.config.paths import cache_dir

    stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in images]
    stamp = hashlib.sha256(json.dumps(stats).encode()).hexdigest()
    path = cache_dir() / "onnx" / "calibration.json"
    try:
        rec = json.loads(path.read_text())
        if rec["stamp"] == stamp and isinstance(rec["sha256"], str):
            return rec["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = files_digest(images)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"stamp": stamp, "sha256": digest, "images": len(images)}))
    return digest


def produced_by(fp32: bytes, images: list[Path]) -> dict:
    """What an int8 model is made from: recorded beside it, and digested into its file name."""
    import onnx
    import onnxruntime

    return {"source_model_sha256": hashlib.sha256(fp32).hexdigest(), "calibration_images": len(images),
            "calibration_sha256": calibration_digest(images), "onnxruntime": onnxruntime.__version__,
            "onnx": onnx.__version__, "recipe": RECIPE}


class _Reader:
    """ONNX Runtime's calibration data reader over image files, :data:`CALIBRATION_BATCH` at a time."""

    def __init__(self, images: list[Path], preprocess: Preprocess):
        self.batches = iter([images[i:i + CALIBRATION_BATCH] for i in range(0, len(images), CALIBRATION_BATCH)])
        self.preprocess = preprocess

    def get_next(self) -> dict | None:
        batch = next(self.batches, None)
        return None if batch is None else {"x": np.stack([self.preprocess(p) for p in batch]).astype(np.float32)}

    def rewind(self) -> None:  # pragma: no cover - only multi-pass calibrators call it
        raise NotImplementedError


def quantize(fp32: bytes, images: list[Path], preprocess: Preprocess) -> bytes:
    """The int8 model of ``fp32`` (ONNX bytes, input ``x``), calibrated on ``images``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="vps-int8-") as d:
        src, pre, out = Path(d) / "fp32.onnx", Path(d) / "pre.onnx", Path(d) / "int8.onnx"
        src.write_bytes(fp32)
        quant_pre_process(str(src), str(pre))
        quantize_static(str(pre), str(out), _Reader(images, preprocess), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=RECIPE["ops"], per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"CalibMaxIntermediateOutputs": 2})
        return out.read_bytes()


def cached_model(name: str, fp32: bytes, preprocess: Preprocess) -> bytes:
    """The int8 model of ``fp32`` (cached as ``<name>-int8-<digest>.onnx`` + ``.json``), built when missing or
    stale; a stale model of the same name is removed once the new one is written."""
    from core.embedding import onnx

    images = calibration_images()
    record = produced_by(fp32, images)
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    return onnx.cached(f"{name}-int8-{key}", lambda: quantize(fp32, images, preprocess), record,
                       stale=f"{name}-int8-*", lock=f"{name}-int8")


def record(name: str) -> dict | None:
    """The ``produced_by`` record of the cached int8 model of ``name``, or None when none is cached."""
    from core.config.paths import cache_dir

    for p in sorted((cache_dir() / "onnx").glob(f"{name}-int8-*.json")):
        return json.loads(p.read_text())["produced_by"]
    return None
