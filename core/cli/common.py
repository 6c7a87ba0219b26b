"""What every verb shares: the errors that are the user's (one line, exit 2), skipped-row reports, loading an
index with its embedder through the cached loader."""

from __future__ import annotations

import sys

from core.config.store import StoreError

#: errors a user can cause (bad input, a missing or unwritable file, a full disk): one line, exit 2
USER_ERRORS = (ValueError, StoreError, OSError)


def one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def print_skipped(skipped: list[str], limit: int = 20) -> None:
    if skipped:
        print(f"skipped {len(skipped)} row(s):", file=sys.stderr)
        for s in skipped[:limit]:
            print(f"  {s}", file=sys.stderr)
        if len(skipped) > limit:
            print(f"  ... and {len(skipped) - limit} more", file=sys.stderr)


def embedder_arg(p, default: str | None = None, when_none: str = "the one the index was built with") -> None:
    p.add_argument("--model", default=default, metavar="SPEC",
                   help=f"embedder spec (default: {default or when_none}), e.g. efficientnet-lite2, "
                        "efficientnet-lite0:int8 (int8 ONNX Runtime: half the CPU, vectors close to fp32's) or "
                        "efficientnet-lite0:ms+head:MODEL_DIR (a head from train-metric)")


#: what ``--index`` takes, in every verb's help
INDEX_HELP = "index folder, or a Milvus URI: milvus-lite:PATH, PATH.db, http(s)://HOST:19530[?collection=NAME]"


def open_index(location: str, model: str | None = None):
    """``(index, embedder)``: the embedder named by ``model`` or recorded in the index, via the cached loader."""
    from core.config.defaults import DEFAULT_SPEC
    from core.embedding import load_embedder
    from core.index import open_index as open_at

    idx = open_at(location)
    emb = load_embedder(model or idx.spec or DEFAULT_SPEC)
    idx.check_embedder(emb)
    return idx, emb


def rank_args(p) -> None:
    from core.config.defaults import DEFAULT_RANK, RANKS

    p.add_argument("--rank", choices=RANKS, default=DEFAULT_RANK,
                   help="static (default): similarity re-ranked by the attribute filters with fixed weights; "
                        "dynamic: per-query weights from the model trained by rank-train; distance: nearest "
                        "neighbours only")
    p.add_argument("--weights", default=None, metavar="DIM=W,...",
                   help="static weights, e.g. similarity=1,pixel_colour=0.5 (dimensions not named keep 1 / 0.25)")


def status(message: str) -> None:
    """A progress line on a terminal, at once, before slow work that has no counter yet (on a pipe, nothing:
    stderr keeps only errors and progress bars)."""
    if sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)
