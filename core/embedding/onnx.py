"""Optional ONNX Runtime execution of a torch image tower: same vectors (within 1e-4), less CPU.

The ONNX file is exported from the loaded torch module on first use and cached under ``cache_dir()/onnx``
keyed by everything that produced it (spec, weights file, torch and opset versions); a stale file is never
used because its key changes. Without ``onnxruntime`` (or when export fails) callers fall back to torch.
Importing this module, or running a cached model, imports no torch: only an export does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.config.store import atomic_write

if TYPE_CHECKING:
    import torch

OPSET = 17
#: images per session run: a larger batch runs in chunks of this many. Without an arena each run allocates its
#: activations afresh; a chunk's are small enough for the heap to reuse, where a batch of 32's (~150 MB in fp32)
#: are mapped from the kernel and faulted in each time (fp32: 65 -> 84 img per CPU-s, kernel share 0.25 -> 0.06)
CHUNK = 2


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def torch_version() -> str:
    """``torch.__version__`` (local build tag included, e.g. ``2.14.1+cu130``), read from torch's ``version.py``
    without importing torch (imported only where that file cannot be read)."""
    spec = importlib.util.find_spec("torch")
    try:
        text = (Path(spec.origin).parent / "version.py").read_text() if spec and spec.origin else ""
    except OSError:
        text = ""
    found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    if found is None:
        import torch

        return torch.__version__
    return found.group(1)


def _key(spec: str, weights: str, image_size: int) -> str:
    st = Path(weights).stat()
    raw = f"{spec}|{Path(weights).resolve()}|{st.st_size}|{st.st_mtime_ns}|{image_size}|{torch_version()}|{OPSET}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def export(module: torch.nn.Module, forward, image_size: int, outputs: tuple[str, ...] = ("y",),
           dynamic_hw: bool = False) -> bytes:
    """Serialise ``forward`` (NCHW float batch -> one tensor per name in ``outputs``) to ONNX bytes with a
    dynamic batch axis, and dynamic height and width when ``dynamic_hw`` (fully convolutional read-outs)."""
    import torch

    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.module = module  # registered, so its weights export as parameters

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return forward(x)

    wrapper = Features().eval()
    axes = {"n": 0} | ({"h": 2, "w": 3} if dynamic_hw else {})
    dyn = {"x": {i: a for a, i in axes.items()}} | {o: {0: "n"} for o in outputs}
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, torch.zeros(1, 3, image_size, image_size), buf, input_names=["x"],
                          output_names=list(outputs), dynamic_axes=dyn, opset_version=OPSET, dynamo=False)
    return buf.getvalue()


def cached_model(spec: str, weights: str, image_size: int, make: Callable[[], bytes]) -> bytes:
    """The ONNX bytes for this exact model (``spec`` with ``weights`` at ``image_size``): read from the cache
    folder, or made by ``make()`` (an :func:`export`) once and kept there."""
    return cached(f"{spec.replace(':', '-')}-{_key(spec, weights, image_size)}", make)


def cached(name: str, make: Callable[[], bytes], record: dict | None = None, stale: str | None = None,
           lock: str | None = None) -> bytes:
    """The one model cache: ``cache_dir()/onnx/<name>.onnx``, read, or made by ``make()`` once (under the file lock
    ``<lock>.lock``, default ``<name>.onnx.lock``; written atomically) with ``record`` (what produced it) beside it
    as ``<name>.json``; then the files matching the glob ``stale`` of other names (older models of the same kind,
    which should share ``lock``) are removed."""
    from filelock import FileLock

    from core.config.paths import cache_dir

    d = cache_dir() / "onnx"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.onnx"
    with FileLock(str(d / f"{lock}.lock") if lock else str(path) + ".lock"):
        if not path.is_file():
            model = make()
            if record is not None:
                atomic_write(path.with_suffix(".json"), json.dumps({"model": path.name, "produced_by": record},
                                                                   indent=1))
            atomic_write(path, model)
            for old in d.glob(stale) if stale else ():
                if not old.name.startswith(f"{name}."):
                    old.unlink(missing_ok=True)
        return path.read_bytes()


class OrtRunner:
    """An ONNX Runtime session: ``run(NCHW float32 array) -> N x dim array``."""

    def __init__(self, model: bytes, threads: int | None = None):
        import onnxruntime as ort

        from core.config.runtime import cpu_count

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or cpu_count()
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting: decode threads share the same cores between batches.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # No arena: ONNX Runtime's would keep the largest batch's activations (~700 MB after indexing a catalog)
        # for the life of the process; freed, they go back to the heap, which an index build then trims.
        so.enable_cpu_mem_arena = False
        self.session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        last = self.session.get_outputs()[0].shape[-1]
        #: width of the first output (0 where the model leaves it dynamic)
        self.dim = last if isinstance(last, int) else 0

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The first output, run :data:`CHUNK` images at a time."""
        if len(batch) <= CHUNK:
            return self.run_all(batch)[0]
        return np.concatenate([self.run_all(batch[i:i + CHUNK])[0] for i in range(0, len(batch), CHUNK)])

    def run_all(self, batch: np.ndarray) -> list[np.ndarray]:
        """Every output of the model, in the order it was exported with."""
        return self.session.run(None, {"x": np.ascontiguousarray(batch, np.float32)})
