"""Catalog embedding on Ray Data: image paths -> embedding actors (the one batch embedder, the one loader) ->
Parquet vector shards (``row``, ``vector`` as float32 bytes, ``error``) that the index builders read back.

``address`` joins a running cluster (``ray://head:10001``, ``auto``); without it a local Ray starts on this
machine and is shut down with every process it started, whatever happens. Each actor takes one CPU and one CPU
is always left to the read and write tasks, so a 2-CPU machine cannot starve its own pipeline.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from core.config.paths import PROJECT_ROOT
from core.config.runtime import cpu_count
from core.data.catalog import Catalog

#: object store of a local Ray: vectors only pass through it (a 10^5-image catalog is 0.5 GB at 1280-d)
LOCAL_OBJECT_STORE = 512 << 20


class EmbedActor:
    """One Ray actor: loads the embedder once, embeds batches of image paths."""

    def __init__(self, spec: str):
        from core.embedding import load_embedder

        self.embedder = load_embedder(spec)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from core.embedding.batch import embed_sources

        paths = [str(p) for p in batch["path"]]
        vecs, errors = embed_sources(self.embedder, paths, batch_size=len(paths), workers=1)
        out, it = [], iter(vecs)
        for i in range(len(paths)):
            out.append(b"" if i in errors else np.asarray(next(it), np.float32).tobytes())
        return {"row": np.asarray(batch["row"], np.int64), "vector": np.array(out, dtype=object),
                "error": np.array([errors.get(i, "") for i in range(len(paths))], dtype=object)}


def _ray():
    try:
        import ray
    except ImportError:
        raise ValueError("--engine ray needs Ray Data: pip install 'ray[data]'") from None
    return ray


def embed_catalog_ray(catalog: Catalog, spec: str, shards: str | Path, *, address: str | None = None,
                      batch_size: int = 32, actors: int | None = None) -> Path:
    """Embed every row of ``catalog`` with ``spec`` on Ray; write the vector shards to ``shards`` (a folder)."""
    ray = _ray()
    out = Path(shards)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("*.parquet")):
        raise ValueError(f"{out} already holds vector shards; give an empty folder")
    started = not ray.is_initialized()
    if started:
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                                        os.environ.get("PYTHONPATH")]))}}
        if address:  # the nodes of a cluster get this package (models and catalog images must be on them)
            env = {"py_modules": [str(PROJECT_ROOT / "core")]}
        ray.init(address=address, num_cpus=None if address else max(2, cpu_count()), runtime_env=env,
                 object_store_memory=None if address else LOCAL_OBJECT_STORE, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 2))
        n_actors = actors or max(1, cpus - 1)  # one CPU stays free for the read and write tasks
        items = [{"row": i, "path": str(catalog.path(r))} for i, r in enumerate(catalog.rows)]
        ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // batch_size, 64)))
        ds = ds.map_batches(EmbedActor, fn_constructor_args=(spec,), batch_size=batch_size, num_cpus=1,
                            compute=ray.data.ActorPoolStrategy(size=n_actors), batch_format="numpy")
        ds.write_parquet(str(out))
    finally:
        if started:
            ray.shutdown()
    return out


def read_shards(shards: str | Path, n_rows: int, dim: int) -> tuple[np.ndarray, dict[int, str]]:
    """``(vectors, errors)`` as :func:`~core.embedding.batch.embed_sources` returns them, from the shards of
    ``n_rows`` catalog rows; a missing, repeated or malformed row is a ``ValueError``."""
    import pyarrow.parquet as pq

    files = sorted(Path(shards).glob("*.parquet"))
    if not files:
        raise ValueError(f"no vector shards in {shards}")
    table = pq.read_table(files)
    rows = np.asarray(table.column("row").to_numpy(), np.int64)
    if len(rows) != n_rows or not np.array_equal(np.sort(rows), np.arange(n_rows)):
        raise ValueError(f"the shards in {shards} hold {len(rows)} rows, not the catalog's {n_rows} once each")
    order = np.argsort(rows)
    blobs, errs = table.column("vector").to_pylist(), table.column("error").to_pylist()
    vecs, errors = [], {}
    for j in order:
        if errs[j]:
            errors[int(rows[j])] = errs[j]
        elif len(blobs[j]) != 4 * dim:
            raise ValueError(f"a shard in {shards} holds a {len(blobs[j]) // 4}-d vector, not {dim}-d")
        else:
            vecs.append(np.frombuffer(blobs[j], np.float32))
    return (np.stack(vecs) if vecs else np.zeros((0, dim), np.float32)), errors
