"""Reading an index generation defensively: only regular files inside it (no symlinks, FIFOs or devices), each
checked for type, shape, range and agreement with the manifest before use. Anything wrong is one
:class:`IndexStateError` line; a file that vanished (a writer collected the generation) stays
``FileNotFoundError`` so the loader can retry on the new one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from core.config.store import MANIFEST_BYTES, StoreError, read_regular

FORMAT_VERSION = 1
METRIC = "angular"
#: size caps of the JSON files (per vector where they grow with the index)
ITEM_BYTES, REMOVED_BYTES, PRODUCTS_BYTES = 16 << 10, 24, 1 << 30
MAX_DIM = 1 << 16
MAX_VECTORS = 1 << 31
PCA_BYTES = 256 << 20
_SCALARS = {str, int, float, bool, type(None)}
FORESTS = ("annoy", "hnsw")
#: what a graph was built with (the manifest of an ``hnsw`` forest; absent in graphs written before them)
GRAPH_FIELDS = ("graph_m", "graph_ef_construction")


class IndexStateError(ValueError):
    """An index that cannot be used as asked (missing, stale, damaged, built with another embedder)."""


def damaged(gen: Path, name: str, what: str) -> IndexStateError:
    return IndexStateError(f"index {gen.parent}: {name} {what}; the index is damaged, rebuild it")


def _regular(gen: Path, name: str) -> Path:
    """``gen/name`` if it is a regular file (FileNotFoundError when it is missing)."""
    path = gen / name
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise damaged(gen, name, "is not a regular file (a symlink, FIFO or device)")
    return path


def _open_regular(gen: Path, name: str):
    """``gen/name`` opened for reading if it is a regular file, without following a symlink."""
    try:
        fd = os.open(gen / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        if e.errno == errno.ELOOP:
            raise damaged(gen, name, "is a symbolic link; only regular files are read") from None
        raise damaged(gen, name, f"cannot be opened ({e.strerror})") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise damaged(gen, name, "is not a regular file (a FIFO or device)")
    return f


def read_json(gen: Path, name: str, max_bytes: int):
    try:
        data = read_regular(gen / name, max_bytes)
    except StoreError as e:
        raise damaged(gen, name, str(e).replace(str(gen / name), "").strip()) from None
    try:
        return json.loads(data)
    except ValueError:
        raise damaged(gen, name, "is not valid JSON") from None


def _int(m: dict, key: str, lo: int, hi: int) -> int:
    v = m.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise ValueError(f"{key} must be an integer in {lo}..{hi}, not {str(v)[:40]!r}")
    return v


def _check_forest(m: dict) -> None:
    """The manifest's forest, and for a graph its file's size, digest and what it was built with."""
    if m.get("forest", "annoy") not in FORESTS:
        raise ValueError(f"forest must be one of {', '.join(FORESTS)}")
    if m.get("forest") == "hnsw":
        _int(m, "hnsw_bytes", 0, 1 << 62)
        if not isinstance(m.get("hnsw_digest"), str):
            raise ValueError("hnsw_digest must be text")
        for key in GRAPH_FIELDS:
            if key in m:
                _int(m, key, 1, 1 << 16)


def read_manifest(gen: Path) -> dict:
    """The manifest, with every field the loader uses checked."""
    m = read_json(gen, "manifest.json", MANIFEST_BYTES)
    if not isinstance(m, dict):
        raise damaged(gen, "manifest.json", "is not an object")
    if m.get("format") != FORMAT_VERSION:
        raise IndexStateError(f"{gen.parent} was written by another version of this program (format "
                              f"{str(m.get('format'))[:20]}, expected {FORMAT_VERSION}); rebuild it")
    try:
        emb = m.get("embedder")
        if not isinstance(emb, dict) or not isinstance(emb.get("spec"), str) or not emb["spec"]:
            raise ValueError("embedder must be an object with a spec")
        dim = _int(m, "dim", 1, MAX_DIM)
        _int(m, "annoy_dim", 1, dim)
        _int(m, "trees", 1, 1 << 16)
        n = _int(m, "n_vectors", 0, MAX_VECTORS)
        _int(m, "n_base", 0, n)
        if m.get("metric", METRIC) != METRIC:
            raise ValueError(f"metric must be {METRIC}")
        if not isinstance(m.get("catalog_root"), str | None) or not isinstance(m.get("catalog_fingerprint"),
                                                                               str | None):
            raise ValueError("catalog_root and catalog_fingerprint must be text")
        if "annoy_bytes" in m:
            _int(m, "annoy_bytes", 0, 1 << 62)
        _check_forest(m)
        t = m.get("search")
        if t is not None:
            if not isinstance(t, dict):
                raise ValueError("search must be an object of settings")
            _int(t, "k", 1, 1 << 20)
            _int(t, "search_k", 1, 1 << 40)
            _int(t, "candidates", 1, MAX_VECTORS)
            if not all(type(t.get(key)) in (int, float) for key in ("recall", "target")) or not isinstance(
                    t.get("queries"), int):
                raise ValueError("search must record its recall, target and queries as numbers")
    except ValueError as e:
        raise damaged(gen, "manifest.json", f"is inconsistent: {e}") from None
    return m


class VectorFile:
    """The rows of ``vectors.npy``, read with ``pread`` from a descriptor held open, never memory-mapped.

    Truncating or rewriting the file under a running process makes the next read an :class:`IndexStateError`
    (one line), not a SIGBUS; a file replaced by another (a new inode) leaves this one reading the old rows.
    Indexes like an ``(n, dim)`` float32 array: ``v[i]``, ``v[a:b]``, ``v[ids]``, ``np.asarray(v)``."""

    ndim, dtype = 2, np.dtype(np.float32)

    def __init__(self, f, gen: Path, offset: int, n: int, dim: int, warming: threading.Thread | None = None):
        self._f, self._gen, self._offset = f, gen, offset
        self.shape = (n, dim)
        self._row = dim * 4
        self._warming = warming

    def wait_warm(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: no limit) for the read pass that warms the file on open
        (:func:`prefetch`); True once it has ended, or when none ran."""
        if self._warming is not None:
            self._warming.join(timeout)
            return not self._warming.is_alive()
        return True

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def intact(self) -> bool:
        """The file still has the size it had when opened (one ``fstat``)."""
        try:
            return os.fstat(self._f.fileno()).st_size == self._offset + self.shape[0] * self._row
        except (OSError, ValueError):
            return False

    def _read(self, a: int, b: int) -> np.ndarray:
        """Rows ``a:b`` read into a new array."""
        out = np.empty((b - a, self.shape[1]), np.float32)
        if not out.size:
            return out
        view, done, start = memoryview(out).cast("B"), 0, self._offset + a * self._row
        while done < len(view):
            try:
                got = os.preadv(self._f.fileno(), [view[done:done + (1 << 30)]], start + done)
            except (OSError, ValueError) as e:
                raise damaged(self._gen, "vectors.npy", f"cannot be read ({e})") from None
            if got <= 0:
                raise damaged(self._gen, "vectors.npy", "was truncated while the index was in use")
            done += got
        return out

    def _read_runs(self, uniq: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Rows ``uniq`` (sorted, unique; runs of consecutive rows begin at positions ``starts``) into one new array,
        one ``pread`` per run: the candidates of a search, read with little work per row."""
        out = np.empty((len(uniq), self.shape[1]), np.float32)
        view, fd, row = memoryview(out).cast("B"), self._f.fileno(), self._row
        bounds = [0, *starts.tolist(), len(uniq)]
        for a, b, first in zip(bounds, bounds[1:], uniq[bounds[:-1]].tolist()):
            try:
                done = os.preadv(fd, [view[a * row:b * row]], self._offset + first * row)
            except (OSError, ValueError):
                done = 0
            if done != (b - a) * row:  # a short read or an error: the careful path says which
                out[a:b] = self._read(first, first + b - a)
        return out

    def rows(self, ids) -> np.ndarray:
        """Rows ``ids`` (any order, repeats allowed): one read per run of consecutive rows."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        n = self.shape[0]
        if len(ids) and (ids.min() < -n or ids.max() >= n):
            raise IndexError(f"row out of range for {n} vectors")
        ids = np.where(ids < 0, ids + n, ids)
        uniq = np.unique(ids)
        if not len(uniq):
            return np.zeros((0, self.shape[1]), np.float32)
        starts = np.flatnonzero(np.diff(uniq) != 1) + 1
        if len(starts) >= 2048:  # many scattered rows: read their span in chunks instead
            lo, hi = int(uniq[0]), int(uniq[-1]) + 1
            step = max(1, (64 << 20) // self._row)
            block = np.concatenate([self._read(a, min(hi, a + step))[uniq[(uniq >= a) & (uniq < a + step)] - a]
                                    for a in range(lo, hi, step)])
        elif not len(starts):
            block = self._read(int(uniq[0]), int(uniq[-1]) + 1)
        else:
            block = self._read_runs(uniq, starts)
        return block if len(uniq) == len(ids) and np.array_equal(uniq, ids) else block[np.searchsorted(uniq, ids)]

    def __getitem__(self, key):
        if isinstance(key, tuple):
            head = self[key[0]]
            return head[key[1:]] if np.ndim(head) == 1 else head[(slice(None), *key[1:])]
        if isinstance(key, int | np.integer):
            return self.rows([int(key)])[0]
        if isinstance(key, slice):
            a, b, step = key.indices(self.shape[0])
            return self._read(a, max(a, b))[::step] if step > 0 else self.rows(np.arange(a, b, step))
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        return self.rows(key) if key.ndim == 1 else self.rows(key.reshape(-1)).reshape(*key.shape, self.shape[1])

    def __array__(self, dtype=None, copy=None):
        out = self._read(0, self.shape[0])
        return out if dtype is None else out.astype(dtype)

    def close(self) -> None:
        self._f.close()


def read_vectors(gen: Path, n: int, dim: int) -> VectorFile:
    """``vectors.npy`` held open for reading rows (:class:`VectorFile`), after checking it holds exactly ``n`` x
    ``dim`` float32."""
    name = "vectors.npy"
    f = _open_regular(gen, name)
    try:
        try:
            version = np.lib.format.read_magic(f)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = header(f)
        except (ValueError, OSError, EOFError, SyntaxError) as e:
            raise damaged(gen, name, f"is not a NumPy array file ({str(e).splitlines()[0][:80]})") from None
        offset = f.tell()
        size = os.fstat(f.fileno()).st_size
        if dtype != np.dtype("<f4") or fortran or shape != (n, dim):
            raise damaged(gen, name, f"holds {shape} {dtype}, the manifest says ({n}, {dim}) float32")
        if size != offset + n * dim * 4:
            raise damaged(gen, name, f"is {size:,} bytes, {offset + n * dim * 4:,} expected")
    except BaseException:
        f.close()
        raise
    return VectorFile(f, gen, offset, n, dim, prefetch(f.fileno(), size))


def mem_available() -> int:
    """Bytes of memory the kernel could give without swapping (``MemAvailable``), or 0 when unknown."""
    try:
        with open("/proc/meminfo") as f:
            line = next((ln for ln in f if ln.startswith("MemAvailable:")), "")
        return int(line.split()[1]) * 1024 if line else 0
    except (OSError, ValueError, IndexError):
        return 0


def prefetch(fd: int, size: int, chunk: int = 16 << 20) -> threading.Thread | None:
    """Read the whole file once in a background thread (its own descriptor, one reused 16 MB buffer: no private
    memory kept; the thread at the lowest CPU priority, so searches come first) so it sits in the page cache, when
    it takes at most half the available memory: a search's re-scored rows are then not disk reads (640 scattered
    rows of a 5 GB ``vectors.npy``: 18 ms from a cold cache, 1.8 ms warm; BENCHMARKS.md, issue 29).
    ``posix_fadvise(WILLNEED)`` read only 8 MB of it. Returns the thread (``VectorFile.wait_warm`` waits for it)."""
    if size > mem_available() // 2:
        return None
    try:
        own = os.dup(fd)
    except OSError:
        return None

    def run() -> None:
        try:  # Linux: each thread is a task with a nice value of its own
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (OSError, AttributeError):
            pass
        buf, done = bytearray(min(chunk, max(1, size))), 0
        try:
            while done < size:
                got = os.preadv(own, [buf], done)
                if got <= 0:  # truncated: the searches say so
                    return
                done += got
        except (OSError, ValueError):
            return
        finally:
            os.close(own)

    t = threading.Thread(target=run, name="vectors-prefetch", daemon=True)
    t.start()
    return t


def check_items(gen: Path, items, n: int) -> list[dict]:
    if not isinstance(items, list) or len(items) != n:
        what = f"{len(items):,} entries" if isinstance(items, list) else f"a {type(items).__name__}"
        raise damaged(gen, "items.json", f"holds {what}, the manifest says {n:,} vectors")
    for it in items:
        if type(it) is not dict or type(it.get("product_id")) is not str or type(it.get("image")) is not str:
            raise damaged(gen, "items.json", f"has an entry that is not {{product_id, image}}: {str(it)[:60]}")
    return items


def check_products(gen: Path, products) -> dict[str, dict]:
    if not isinstance(products, dict):
        raise damaged(gen, "products.json", f"is a {type(products).__name__}, not an object of products")
    if not all(type(f) is dict for f in products.values()) or not {
            type(v) for f in products.values() for v in f.values()} <= _SCALARS:
        raise damaged(gen, "products.json", "has a product whose fields are not an object of text or numbers")
    return products


def check_removed(gen: Path, removed, n: int) -> set[int]:
    if not isinstance(removed, list) or not all(type(i) is int and 0 <= i < n for i in removed):
        raise damaged(gen, "removed.json", f"must list vector numbers in 0..{n - 1}")
    return set(removed)


def read_pca(gen: Path, dim: int, annoy_dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(mean, components)`` of a reduced forest, checked (shapes, float32, no pickles), or None."""
    name = "pca.npz"
    try:
        path = _regular(gen, name)
    except FileNotFoundError:
        if annoy_dim != dim:  # the loader tells a damaged index from a collected generation
            raise
        return None
    want = {"mean": (dim,), "components": (annoy_dim, dim)}
    if path.stat().st_size > PCA_BYTES:
        raise damaged(gen, name, f"is larger than {PCA_BYTES >> 20} MB")
    try:
        with zipfile.ZipFile(path) as z:
            for key, shape in want.items():
                info = z.getinfo(f"{key}.npy")
                if info.file_size > 4096 + 4 * int(np.prod(shape)):
                    raise ValueError(f"{key} is {info.file_size:,} bytes")
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    got, _, dtype = read(f)
                    if got != shape or dtype != np.dtype("<f4"):
                        raise ValueError(f"{key} is {got} {dtype}, expected {shape} float32")
            with np.load(path, allow_pickle=False) as z2:
                out = (np.asarray(z2["mean"]), np.asarray(z2["components"]))
    except (ValueError, KeyError, OSError, EOFError, SyntaxError, zipfile.BadZipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise damaged(gen, name, f"is unusable ({str(e).splitlines()[0][:100] if str(e) else type(e).__name__})"
                      ) from None
    if not all(np.isfinite(a).all() for a in out):
        raise damaged(gen, name, "holds non-finite numbers")
    return out


def _private_copy(src, size: int, dirs: list[Path]) -> tuple[int, str]:
    """A copy of the open file ``src`` that no path reaches (``O_TMPFILE``, else a temporary file unlinked once
    opened by the caller): ``(fd, path to open it by)``. Raises OSError when no folder takes it."""
    err: OSError | None = None
    for d in dirs:
        try:
            if hasattr(os, "O_TMPFILE") and Path("/proc/self/fd").is_dir():
                fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o600)
                path = f"/proc/self/fd/{fd}"
            else:
                fd, path = tempfile.mkstemp(dir=d, prefix=".private-")
        except OSError as e:
            err = e
            continue
        try:
            done = 0
            while done < size:
                try:
                    got = os.copy_file_range(src.fileno(), fd, size - done, done, done)
                except (OSError, AttributeError):
                    got = os.pwrite(fd, os.pread(src.fileno(), min(size - done, 16 << 20), done), done)
                if got == 0:
                    break
                done += got
            if done != size:
                raise OSError(errno.EIO, f"copied {done:,} of {size:,} bytes (truncated while copied)")
            return fd, path
        except OSError as e:
            os.close(fd)
            if not path.startswith("/proc/"):
                os.unlink(path)
            err = e
    raise err or OSError(errno.ENOENT, "no folder for a private copy")


def read_annoy(gen: Path, m: dict) -> AnnoyIndex | None:
    """The Annoy forest over the first ``n_base`` vectors, checked against the manifest, or None when empty.

    Annoy memory-maps its file, so it maps a private copy that no path reaches: truncating or rewriting
    ``annoy.ann`` under a running process cannot fault its pages (SIGBUS). The copy is loaded with its pages
    mapped in at once (warm from the first query)."""
    n_base, annoy_dim = m["n_base"], m["annoy_dim"]
    if not n_base:
        return None
    name = "annoy.ann"
    with _open_regular(gen, name) as f:
        size = os.fstat(f.fileno()).st_size
        if "annoy_bytes" in m and size != m["annoy_bytes"]:
            raise damaged(gen, name, f"is {size:,} bytes, the manifest says {m['annoy_bytes']:,}")
        try:
            fd, path = _private_copy(f, size, [gen, gen.parent, Path(tempfile.gettempdir())])
        except OSError as e:
            raise damaged(gen, name, f"cannot be copied for reading ({e.strerror or e})") from None
    ann = AnnoyIndex(annoy_dim, METRIC)
    try:
        ann.load(path, prefault=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise damaged(gen, name, f"is not an Annoy index of {annoy_dim}-d vectors ({str(e)[:80]})") from None
    finally:
        if not path.startswith("/proc/"):
            os.unlink(path)
        os.close(fd)
    if ann.get_n_items() != n_base or ann.get_n_trees() < 1:
        got = ann.get_n_items()
        ann.unload()
        raise damaged(gen, name, f"holds {got:,} items, the manifest says {n_base:,}")
    return ann


def file_digest(fd: int, size: int) -> str:
    """BLAKE2b-128 of the first ``size`` bytes of an open file (the manifest's check of a graph file)."""
    h, done = hashlib.blake2b(digest_size=16), 0
    while done < size:
        chunk = os.pread(fd, min(size - done, 16 << 20), done)
        if not chunk:
            break
        h.update(chunk)
        done += len(chunk)
    return h.hexdigest()


def read_hnsw(gen: Path, m: dict):
    """The hnswlib graph over the first ``n_base`` vectors, or None when empty. hnswlib reads the whole file into
    memory and trusts its header, so it reads a private copy whose digest matched the manifest's first."""
    n_base, dim = m["n_base"], m["annoy_dim"]
    if not n_base:
        return None
    import hnswlib

    name = "hnsw.bin"
    with _open_regular(gen, name) as f:
        size = os.fstat(f.fileno()).st_size
        if size != m["hnsw_bytes"]:
            raise damaged(gen, name, f"is {size:,} bytes, the manifest says {m['hnsw_bytes']:,}")
        try:
            fd, path = _private_copy(f, size, [gen, gen.parent, Path(tempfile.gettempdir())])
        except OSError as e:
            raise damaged(gen, name, f"cannot be copied for reading ({e.strerror or e})") from None
    try:
        if file_digest(fd, size) != m["hnsw_digest"]:
            raise damaged(gen, name, "does not match the digest the manifest records")
        graph = hnswlib.Index(space="ip", dim=dim)
        try:
            graph.load_index(path, max_elements=n_base)
        except (RuntimeError, ValueError, MemoryError) as e:
            raise damaged(gen, name, f"is not an hnswlib graph of {dim}-d vectors ({str(e)[:80]})") from None
    finally:
        if not path.startswith("/proc/"):
            os.unlink(path)
        os.close(fd)
    if graph.get_current_count() != n_base:
        raise damaged(gen, name, f"holds {graph.get_current_count():,} items, the manifest says {n_base:,}")
    return graph
