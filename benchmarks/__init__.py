"""The performance suite, beside the engine: ``python -m core bench`` runs it (the verb table names
:mod:`benchmarks.cli` by string). Benchmarks import the engine; no engine module imports a benchmark.

- :mod:`benchmarks.common`: measuring, data, the result table;
- :mod:`benchmarks.suite`: the runner and the engine sections (embed, query, ann, umap, regions);
- :mod:`benchmarks.app`, :mod:`benchmarks.restart`, :mod:`benchmarks.served`, :mod:`benchmarks.scale`: the app's
  latency, its first result after a restart, the served app under load, the Milvus backend and Ray embedding.
"""
