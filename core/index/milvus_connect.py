"""Where a Milvus index lives, and one connection to it per process.

``milvus-lite:PATH`` or a path ending in ``.db`` is Milvus Lite, embedded in this process (tests, small demos;
one process per path; ``.db`` is added to a ``milvus-lite:`` path without it); ``http(s)://host:19530`` is a
Milvus standalone or distributed server (2.3 or later; its version, read on connect, says what it can do:
:class:`Capabilities`). A query string picks the collection (``?collection=shoes``, default
``products``). Credentials come only from the environment: ``MILVUS_TOKEN`` (or ``MILVUS_USER`` +
``MILVUS_PASSWORD``), and ``MILVUS_DB``; a URI that carries them is refused.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from core.config.paths import slug
from core.index.files import IndexStateError

DEFAULT_COLLECTION = "products"
#: the oldest Milvus server this backend works with (JSON fields with ``exists``, vectors returned by search)
MIN_SERVER = (2, 3)
#: the first server version that groups search results itself (``group_by_field``)
GROUP_BY_SERVER = (2, 4)
_clients: dict[tuple, object] = {}
_caps: dict[int, Capabilities] = {}  # by id(client)
_guard = threading.Lock()


@dataclass(frozen=True)
class Location:
    uri: str  # as the user wrote it
    connect: str  # what pymilvus connects to: a ``.db`` path (Milvus Lite) or a server URL
    collection: str
    lite: bool

    @property
    def root(self) -> Path:
        """A path naming this index for cache keys (never written to)."""
        if self.lite:
            return Path(self.connect).resolve() / self.collection
        return Path("/milvus") / slug(self.connect.split("://", 1)[1]) / slug(os.environ.get("MILVUS_DB", "default")
                                                                              ) / self.collection


@dataclass(frozen=True)
class Capabilities:
    """What the Milvus at one location can do, by its version."""

    version: str  # as the server reports it, e.g. ``v2.3.5-lite``, ``milvus_lite-3.2.2``
    group_by: bool  # search groups by a field itself (Milvus Lite, servers 2.4+); else the client groups


def capabilities(version: str, lite: bool) -> Capabilities:
    """The capabilities of a Milvus that reports ``version``; a server version that does not parse is taken to
    lack grouping (the client groups, which works on every version)."""
    if lite:
        return Capabilities(version, True)
    m = re.match(r"v?(\d+)\.(\d+)", version.strip())
    got = (int(m[1]), int(m[2])) if m else None
    if got is not None and got < MIN_SERVER:
        raise IndexStateError(f"Milvus server {version} is too old: this program needs "
                              f"{'.'.join(map(str, MIN_SERVER))} or later")
    return Capabilities(version, got is not None and got >= GROUP_BY_SERVER)


def parse_location(location: str | Path) -> Location | None:
    """The Milvus location named by ``location``, or None when it names an Annoy index folder."""
    s = str(location)
    base, _, query = s.partition("?collection=")
    coll = query or DEFAULT_COLLECTION
    if base.startswith(("http://", "https://")):
        if "@" in base.split("://", 1)[1].split("/", 1)[0]:
            raise IndexStateError("put Milvus credentials in MILVUS_TOKEN (or MILVUS_USER/MILVUS_PASSWORD), "
                                  "not in the URI")
        return Location(s, base, coll, False)
    if base.startswith("milvus-lite:"):
        path = base.split(":", 1)[1]
        if not path:
            raise IndexStateError("milvus-lite:PATH needs a path, e.g. milvus-lite:/tmp/catalog.db")
        return Location(s, path if path.endswith(".db") else path + ".db", coll, True)
    if base.endswith(".db"):
        return Location(s, base, coll, True)
    return None


def keep_faiss_search_params() -> None:
    """Give faiss indexes back their ``search(x, k, params=...)`` for numpy input where
    ``faiss.contrib.torch_utils`` (imported by pytorch-metric-learning) replaced ``search`` with a torch-aware one
    that takes no ``params``: Milvus Lite passes search parameters to faiss, so its searches would fail in any
    process that also imported the metric-learning code. Tensors still go to the torch-aware method."""
    import sys

    faiss = sys.modules.get("faiss")
    if faiss is None or "faiss.contrib.torch_utils" not in sys.modules \
            or getattr(faiss.Index.__dict__.get("search"), "_vps_params", False):
        return
    for name in dir(faiss):
        cls = getattr(faiss, name)
        if not (isinstance(cls, type) and issubclass(cls, faiss.Index)) or not hasattr(cls, "search_numpy"):
            continue
        torch_search = cls.__dict__.get("search")
        if torch_search is None or getattr(torch_search, "_vps_params", False):
            continue

        def search(self, x, k, *args, params=None, _torch=torch_search, **kw):
            if params is not None or type(x).__module__ == "numpy":
                return self.search_numpy(x, k, *args, params=params, **kw)
            return _torch(self, x, k, *args, **kw)

        search._vps_params = True
        cls.search = search


def client_for(loc: Location, create: bool = False):
    """One connection per (server or Lite path, database) per process; a Lite path that does not exist is only
    created when ``create``. The server's version is read on connect (:func:`capabilities_of`)."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise IndexStateError("the Milvus backend needs pymilvus (and milvus-lite for local paths): "
                              "pip install pymilvus milvus-lite") from None
    keep_faiss_search_params()
    # Milvus Lite keeps no server timestamps; pymilvus would warn on every query iterator that it uses its own
    logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
    db = os.environ.get("MILVUS_DB", "")
    key = (str(Path(loc.connect).resolve()) if loc.lite else loc.connect, db)
    with _guard:
        if key not in _clients:
            kw = {"uri": key[0]}
            if not loc.lite:
                token = os.environ.get("MILVUS_TOKEN") or (
                    f"{os.environ['MILVUS_USER']}:{os.environ.get('MILVUS_PASSWORD', '')}"
                    if os.environ.get("MILVUS_USER") else "")
                kw |= {"token": token} if token else {}
                kw |= {"db_name": db} if db else {}
            elif not create and not Path(key[0]).exists():
                raise IndexStateError(f"no index in {loc.uri} (build it: python -m core index --catalog DIR "
                                      f"--out {loc.uri})")
            else:
                Path(key[0]).parent.mkdir(parents=True, exist_ok=True)
            try:
                client = MilvusClient(**kw)
                caps = capabilities(str(client.get_server_version()), loc.lite)
            except IndexStateError:
                raise
            except Exception as e:  # noqa: BLE001 - pymilvus raises many kinds; one line for the user
                hint = " (a Milvus Lite path serves one process: is another one using it?)" if loc.lite else ""
                raise IndexStateError(f"cannot connect to Milvus at {loc.uri}{hint}: {first_line(e)}") from None
            _clients[key], _caps[id(client)] = client, caps
        return _clients[key]


def capabilities_of(client) -> Capabilities:
    """The capabilities read when ``client`` connected (:func:`client_for`)."""
    return _caps[id(client)]


def first_line(e: BaseException) -> str:
    text = str(getattr(e, "message", "") or e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]
