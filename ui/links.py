"""How a link names the embedder: never a path on this server where a short name does. The head a catalog ships
is ``trained``; a head in the app's cache is named by its folder relative to the cache; a link is read back only
into those folders (a relative name that leads out of the cache, or to no head, is refused)."""

from __future__ import annotations

from pathlib import Path

from core.config.paths import cache_dir

#: a link's name for the head the catalog ships beside itself (the sidebar's "Trained for this catalog")
TRAINED = "trained"
HEAD = "+head:"
CONFIG = "config.json"  # what makes a folder a head (``core.embedding.head``)


def _relative(folder: Path, root: Path) -> Path | None:
    """``folder`` relative to ``root`` when it lies inside it, else None."""
    for f, r in ((folder, root), (folder.resolve(), root.resolve())):
        try:
            return f.relative_to(r)
        except ValueError:
            continue
    return None


def link_spec(spec: str, shipped: str | None = None) -> str:
    """The spec as a link carries it: :data:`TRAINED` for the catalog's own head, a head in the app's cache as
    ``<base>+head:<folder relative to the cache>``, any other spec as it is."""
    if shipped and spec == shipped:
        return TRAINED
    if HEAD in spec:
        base, folder = spec.split(HEAD, 1)
        rel = _relative(Path(folder), cache_dir())
        if rel is not None and rel.parts:
            return f"{base}{HEAD}{rel.as_posix()}"
    return spec


def read_link_spec(text: str) -> str | None:
    """The spec a link names: :data:`TRAINED` as it is (the sidebar resolves it against the catalog's head), a
    relative head folder resolved inside the app's cache, any other spec as it is (a typed absolute head: local
    only, a served sidebar offers none); None for a relative head outside the cache or that is no head."""
    if text == TRAINED or HEAD not in text:
        return text
    base, folder = text.split(HEAD, 1)
    if Path(folder).is_absolute():
        return text
    root = cache_dir()
    d = root / folder
    if ".." in Path(folder).parts or not d.resolve().is_relative_to(root.resolve()) or not (d / CONFIG).is_file():
        return None
    return f"{base}{HEAD}{d}"
