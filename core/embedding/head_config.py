"""A trained head's folder without torch: its files' names, its checked ``config.json``, and where heads are.

What the app's embedder list and the Evaluation page read (:mod:`core.embedding.head` loads the head itself).
"""

from __future__ import annotations

import json
from pathlib import Path

from core.config.store import StoreError, read_regular
from core.embedding.decode import MAX_ZOOMS, MIN_ZOOM, valid_zooms

WEIGHTS, CONFIG = "model.safetensors", "config.json"
TOP_PREFIX = "top."  # tensors of the fine-tuned backbone stages, next to the head's in the same file
MAX_CONFIG_BYTES = 1 << 20
MAX_DIM = 1 << 16
MAX_PARAMS = 64_000_000


def read_config(model_dir: Path) -> dict:
    """``config.json`` of a head, checked: an object with a text ``base``, a ``head`` of positive integer sizes
    and a boolean ``tta_flip`` if given. Raises ``ValueError`` (one line) otherwise."""
    path = model_dir / CONFIG
    try:
        cfg = json.loads(read_regular(path, MAX_CONFIG_BYTES))
    except FileNotFoundError:
        raise ValueError(f"{model_dir}: not a trained head (no {CONFIG})") from None
    except (OSError, StoreError, ValueError) as e:
        raise ValueError(f"{path}: unreadable head config ({str(e).splitlines()[0] if str(e) else e!r})") from None
    head = cfg.get("head") if isinstance(cfg, dict) else None
    if not isinstance(head, dict) or not isinstance(cfg.get("base"), str):
        raise ValueError(f"{path}: a head config needs a text 'base' and a 'head' object")
    for key in ("in_dim", "out_dim", "hidden"):
        v = head.get(key)
        if type(v) is not int or not 1 <= v <= MAX_DIM:
            raise ValueError(f"{path}: head.{key} must be an integer in 1..{MAX_DIM}, not {str(v)[:40]!r}")
    params = head["hidden"] * (head["in_dim"] + head["out_dim"]) + head["in_dim"] * head["out_dim"]
    if params > MAX_PARAMS:
        raise ValueError(f"{path}: a head of {params:,} weights is larger than the {MAX_PARAMS:,} allowed")
    if not isinstance(cfg.get("tta_flip", False), bool):
        raise ValueError(f"{path}: tta_flip must be true or false")
    if type(cfg.get("tune", 0)) is not int or not 0 <= cfg.get("tune", 0) <= 8:
        raise ValueError(f"{path}: tune must be an integer in 0..8")
    zooms = cfg.get("query_zooms", [1.0])
    if not isinstance(zooms, list) or not valid_zooms(zooms):
        raise ValueError(f"{path}: query_zooms must be a list of 1 to {MAX_ZOOMS} numbers in [{MIN_ZOOM}, 1]")
    return cfg


def find_heads(*roots: Path) -> list[Path]:
    """Trained head folders (``config.json`` + weights) under ``roots`` (default: the app's cache)."""
    if not roots:
        from core.config.paths import cache_dir

        roots = (cache_dir(),)
    found = set()
    for root in roots:
        if Path(root).is_dir():
            found.update(p.parent for p in Path(root).glob("**/" + CONFIG) if (p.parent / WEIGHTS).is_file())
    return sorted(found)


def recorded_base(model_dir: Path) -> str | None:
    """The base embedder spec a head's ``config.json`` names, or None when it names none or cannot be read."""
    try:
        base = json.loads(read_regular(model_dir / CONFIG, MAX_CONFIG_BYTES)).get("base")
    except (OSError, StoreError, ValueError, AttributeError):
        return None
    return base if isinstance(base, str) and base else None


def head_specs(spec: str, *roots: Path) -> list[str]:
    """Specs of the trained heads found (see :func:`find_heads`), each on the base embedder it was trained on
    (its ``config.json``); a head whose config does not say is offered on the base of ``spec``."""
    return [f"{recorded_base(p) or spec.split('+head:')[0]}+head:{p}" for p in find_heads(*roots)]
