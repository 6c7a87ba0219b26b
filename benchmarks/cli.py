"""``python -m core bench``: the verb's arguments and runner. The verb table (:mod:`core.cli`) names this module
by string, so no engine module imports a benchmark."""

from __future__ import annotations

SECTIONS = ("embed", "query", "ann", "umap", "regions", "app", "restart", "milvus", "ray", "nomatch", "served",
            "browser")
ON_REQUEST = ("served", "browser")  # sections that drive a browser: only when asked


def args_bench(p) -> None:
    p.add_argument("--quick", action="store_true", help="small sizes, a few minutes (CI)")
    p.add_argument("--out", default=None, help="write the tables as markdown here (e.g. BENCHMARKS.md)")
    p.add_argument("--sections", default=None,
                   help=f"comma list of {','.join(SECTIONS)} (default: all but served; --quick leaves out umap, "
                        "whose numba compilation alone takes about a minute, regions, app, restart, milvus and ray; "
                        "app: the app's latency against its goals; restart: the first result after a server restart "
                        "(fresh process, warm cache); milvus: the Milvus backend; ray: catalog embedding on Ray "
                        "Data; nomatch: the \"no close match\" notice's rates on the real datasets; served: a "
                        "load test of the served app (see --served-driver); browser: the app's latency in headless "
                        "Chromium from a fresh cache, against its goals)")
    p.add_argument("--workdir", default=None, help="scratch folder for synthetic data (default: a temp dir)")
    p.add_argument("--reuse-index", action="store_true",
                   help="query section: reuse the indexes an earlier run built in the same --workdir (their "
                        "recorded build time is reported) instead of building them again")
    p.add_argument("--query-sizes", default=None, metavar="N,N",
                   help="catalog sizes of the query section (default 10000,100000,1000000; --quick: 5000)")
    p.add_argument("--served-driver", choices=("websocket", "browser"), default="websocket",
                   help="how the served section's sessions talk to the app: websocket (Streamlit's protocol, no "
                        "browser: the server's own figures) or browser (headless Chromium pages)")
    p.add_argument("--ann-budget", type=float, default=900.0, help="seconds after which ANN cases are skipped")


def run_bench(a) -> int:
    from benchmarks.suite import run

    default = SECTIONS[:3] if a.quick else tuple(s for s in SECTIONS if s not in ON_REQUEST)
    sections = tuple(s.strip() for s in a.sections.split(",")) if a.sections else default
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    try:
        sizes = tuple(int(x) for x in a.query_sizes.split(",")) if a.query_sizes else None
    except ValueError:
        raise ValueError(f"--query-sizes {a.query_sizes!r}: give catalog sizes such as 100000,1000000") from None
    if sizes and min(sizes) < 100:
        raise ValueError("--query-sizes: each size must be at least 100")
    run(quick=a.quick, out=a.out, workdir=a.workdir, sections=sections, ann_budget_s=a.ann_budget,
        query_sizes=sizes, served_driver=a.served_driver, reuse_index=a.reuse_index)
    return 0
