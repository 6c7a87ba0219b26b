"""Fit a projection head on cached frozen backbone features (``python -m core train-metric``).

Training samples are the catalog images (each product's own view, several augmented copies) and the labelled
training views; both share the product's label. Part of the views is held out: training stops when their
recall@1 against the catalog stops improving, and the best epoch is kept.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from core.config.defaults import DEFAULT_SPEC, METRIC_BASE_SPEC
from core.config.progress import Progress
from core.config.store import atomic_path, atomic_write
from core.data.catalog import file_digest, load_catalog
from core.embedding import Embedder
from core.embedding.decode import MAX_ZOOMS, MIN_ZOOM, valid_zooms
from core.embedding.head import ProjectionHead
from core.embedding.head_config import CONFIG, TOP_PREFIX, WEIGHTS
from core.evaluation import metrics
from core.metric.features import cached_features, zoom_view
from core.metric.losses import make_loss
from core.metric.miners import make_miner
from core.metric.samplers import m_per_class
from core.metric.splits import HOLDOUT_SPLITS, appearance_holdout, listed_holdout
from core.metric.stopping import EarlyStopping

#: frozen base a head is trained on by default: multi-scale read-out of efficientnet-lite0 (stages 5-7 and the
#: final map, see :mod:`core.embedding.efficientnet`; how it was chosen: docs/metric_learning.md)
BASE_SPEC = METRIC_BASE_SPEC


@dataclass
class TrainConfig:
    """Training settings; why each default is what it is (and what was measured against it):
    docs/metric_learning.md."""

    loss: str = "supcon"  # core.metric.losses
    epochs: int = 40  # at most, of the head on the frozen read-out (phase 1)
    batch_size: int = 128
    m: int = 4  # samples per class in a batch
    lr: float = 1e-3
    weight_decay: float = 1e-4
    out_dim: int = 256
    hidden: int = 1024
    dropout: float = 0.2
    patience: int = 8  # epochs without held-out improvement before stopping
    smooth: int = 3  # early stopping reads the mean held-out score of the last ``smooth`` epochs (1: each epoch's)
    holdout: float = 0.1  # fraction of training views held out (for early stopping; for choosing query zooms)
    split: str = "listed"  # which views early stopping holds out (core.metric.splits): the last listed of each
    # label, or "appearance" (the look-alike groups least like the catalog image)
    query_zooms: str = "auto"  # whole-photo queries embedded as the mean of these centre zooms: "auto" picks
    # one of ZOOM_CANDIDATES on a first run held out by zoom_split; or "1" (off), or a list like "0.8,0.65,0.5"
    zoom_split: str = "appearance"  # the held-out split "auto" chooses the zooms on
    label: str = "product_id"  # catalog/views column that says which samples belong together
    catalog_augs: int = 5  # cached augmented copies of each catalog image
    catalog_flip: bool = True  # also train on mirrored catalog images
    view_flip: bool = False  # also train on mirrored training views (one more backbone pass over them)
    view_augs: int = 2  # cached augmented copies of each training view (one backbone pass each)
    catalog_repeat: int = 4  # catalog images are rare next to shop photos: draw them more often
    tta_flip: bool = True  # the trained embedder averages each image with its mirror image
    tune: int = 0  # last backbone stages fine-tuned on cached activations after the head (0: frozen backbone)
    tune_epochs: int = 8  # phase 2: the head and the tuned stages together (each epoch runs those stages)
    tune_lr: float = 1e-4  # learning rate of phase 2
    shop_views: int = 0  # synthetic shop photos of each catalog picture trained on (core.data.shop_views)
    shop_holdout: int = 4  # more of them per picture held out: early stopping reads these when no labelled
    # photos are held out
    shop_augs: str = "all"  # which effects the synthetic photos have: "all" or some of AUGMENTATIONS, "crop,blur"
    head_init: str = "random"  # or "identity": out_dim = the base's, the head starts as the base itself (a linear
    # shortcut set to the identity, the MLP's last layer to zero) and is kept only where it beats it held out
    device: str = "auto"  # cuda when present, else cpu
    seed: int = 0


@dataclass
class Sample:
    path: Path
    label: str
    is_catalog: bool
    digest: str = ""


@dataclass
class TrainResult:
    model_dir: Path
    spec: str
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    zero_shot: dict = field(default_factory=dict)
    seconds: float = 0.0
    n_heldout: int = 0  # held-out views that early stopping watched (0: none given)
    query_zooms: tuple[float, ...] = (1.0,)  # chosen (or given) centre zooms of whole-photo queries
    zoom_scores: dict[str, float] = field(default_factory=dict)  # held-out recall@1 of each candidate
    tune: int = 0  # backbone stages fine-tuned
    synthetic: bool = False  # early stopping read held-out synthetic shop photos (no labelled photo held out)
    state: dict = field(default_factory=dict, repr=False)  # the kept weights (head, and ``top.*`` tuned stages)
    head_config: dict = field(default_factory=dict)
    device: str = "cpu"

    @property
    def beats_base(self) -> bool:
        """The kept head ranks the held-out photos' products first more often than the base embedder does."""
        return self.best.get("recall@1", 0.0) > self.zero_shot.get("recall@1", 0.0)


#: what ``train-metric --from-catalog`` changes in :class:`TrainConfig`, and its base: the pretrained search
#: default, which the identity-initialised head starts as (docs/metric_learning.md: how chosen)
FROM_CATALOG = {"shop_views": 12, "query_zooms": "1", "head_init": "identity"}
FROM_CATALOG_BASE = DEFAULT_SPEC

#: progress(stage, done, total): what a training stage is doing ("reading features (orig)", "training: epoch"),
#: with true counts
StageProgress = Callable[[str, int, int], None]


def training_samples(catalog_dir: str | Path, views: str | Path | None, label: str = "product_id",
                     progress: StageProgress | None = None) -> list[Sample]:
    """Catalog images and labelled views (``views.csv`` with ``image`` and the ``label`` column); ``progress``
    counts the labelled photos read."""
    from core.data.query_sets import read_queries

    cat = load_catalog(catalog_dir)
    view_samples = []
    if views:
        v = Path(views)
        rows, skipped = read_queries(v / "views.csv" if v.is_dir() else v, label)
        rows = [(p, lab) for p, lab in rows if lab and p.is_file()]
        if not rows:
            raise ValueError(f"{views}: no usable labelled photo" + (f" ({skipped[0]})" if skipped else ""))
        for n, (p, lab) in enumerate(rows):
            view_samples.append(Sample(p, lab, False, file_digest(p)))
            if progress and (n % 64 == 63 or n == len(rows) - 1):
                progress("listing the labelled photos", n + 1, len(rows))
    seen = {s.digest for s in view_samples}  # a view also listed in the catalog stays a view
    out = []
    for r in cat.rows:
        lab = r.product_id if label == "product_id" else r.fields.get(label, "")
        digest = file_digest(cat.path(r))
        if lab and digest not in seen:
            out.append(Sample(cat.path(r), lab, True, digest))
            seen.add(digest)
    out += view_samples
    if len({s.label for s in out}) < 2:
        raise ValueError(f"training needs at least two distinct '{label}' labels")
    return out


#: the query zooms ``--query-zooms auto`` chooses from: the photo as it is, with two centre crops, or three
#: centre crops (shop photos hold the product in the middle, with shelf and hand around it)
ZOOM_CANDIDATES: tuple[tuple[float, ...], ...] = ((1.0,), (1.0, 0.8, 0.65), (0.8, 0.65, 0.5))
#: a zoom set must beat the photo as it is by this much held-out recall@1 to be chosen
ZOOM_MARGIN = 0.01


def zoom_candidates(value: str) -> tuple[tuple[float, ...], ...]:
    """``auto`` -> :data:`ZOOM_CANDIDATES`; ``"0.8,0.65"`` -> that one set. Raises ``ValueError`` (one line)."""
    if value.strip() == "auto":
        return ZOOM_CANDIDATES
    try:
        zooms = tuple(float(z) for z in value.split(","))
    except ValueError:
        raise ValueError(f"--query-zooms takes 'auto' or numbers in (0.1, 1] such as 0.8,0.65, not {value!r}") from None
    if not valid_zooms(zooms):
        raise ValueError(f"--query-zooms takes 1 to {MAX_ZOOMS} numbers in [{MIN_ZOOM}, 1], not {value!r}")
    return (zooms,)


def zoom_key(zooms: tuple[float, ...]) -> str:
    """How a zoom set is named in ``config.json`` and printed: ``"1,0.8,0.65"``."""
    return ",".join(f"{z:g}" for z in zooms)


def choose_zooms(candidates: tuple[tuple[float, ...], ...], held_at, held_lab: np.ndarray, ref, ref_lab: np.ndarray
                 ) -> tuple[tuple[float, ...], dict[str, float]]:
    """The candidate whose mean of zoomed views ranks the held-out photos' labels first most often against
    ``ref`` (:data:`ZOOM_MARGIN` ahead of the photo as it is), and each candidate's recall@1. ``held_at(z)``
    gives the held-out photos' unit vectors at zoom ``z``. Without held-out photos: the first candidate."""
    if len(candidates) == 1 or ref is None or not len(held_lab):
        return candidates[0], {}
    views: dict[float, torch.Tensor] = {}
    scores: dict[str, float] = {}
    best, best_score = candidates[0], -1.0
    for cand in candidates:
        for z in cand:
            if z not in views:
                views[z] = held_at(z)
        r1 = recall_at(F.normalize(sum(views[z] for z in cand), dim=-1), held_lab, ref, ref_lab)["recall@1"]
        scores[zoom_key(cand)] = round(r1, 4)
        score = r1 - (0.0 if cand == (1.0,) else ZOOM_MARGIN)
        if score > best_score:
            best, best_score = cand, score
    return best, scores


def holdout_split(cfg: TrainConfig, samples: list[Sample], ids: list[int], vecs: np.ndarray, tune: int) -> set[int]:
    """The held-out samples (``cfg.split``), drawn among ``ids`` (the readable ones; ``vecs`` their backbone
    features). With fine-tuned stages the cached vectors are activations, not features: the listed split."""
    if cfg.split == "listed" or tune:
        return listed_holdout(samples, cfg.holdout) & set(ids)
    return {ids[j] for j in appearance_holdout([samples[i] for i in ids], vecs, cfg.holdout, cfg.seed)}


def recall_at(q: torch.Tensor, q_lab: np.ndarray, ref: torch.Tensor, ref_lab: np.ndarray, ks=(1, 5)) -> dict:
    """Share of queries whose nearest ``k`` references hold one with the same label (cosine)."""
    if not len(q):
        return metrics.recall_at([], ks)
    order = torch.argsort(F.normalize(q, dim=-1) @ F.normalize(ref, dim=-1).T, dim=1, descending=True).numpy()
    ranked = ref_lab[order[:, :max(ks)]]  # only the first relevant rank within the largest k matters
    return metrics.recall_at([metrics.first_relevant(metrics.relevance(r, want)) for r, want in zip(ranked, q_lab)],
                             ks)


def _views_of(cfg: TrainConfig, s: Sample) -> list[str]:
    if s.is_catalog:
        return ["orig"] + (["flip"] if cfg.catalog_flip else []) + [f"aug{k}" for k in range(cfg.catalog_augs)] + [
            f"shop{k}" for k in range(cfg.shop_views)]
    return ["orig"] + (["flip"] if cfg.view_flip else []) + [f"aug{k}" for k in range(cfg.view_augs)]


def fingerprint(samples: list[Sample]) -> str:
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: (s.digest, s.label, s.is_catalog)):
        h.update(f"{s.digest} {s.label} {int(s.is_catalog)}\n".encode())
    return h.hexdigest()[:16]


def make_head(in_dim: int, cfg: TrainConfig) -> ProjectionHead:
    """The head to train: random, or (``head_init="identity"``) one that returns its input at first."""
    if cfg.head_init == "random":
        return ProjectionHead(in_dim, cfg.out_dim, cfg.hidden, cfg.dropout)
    head = ProjectionHead(in_dim, in_dim, cfg.hidden, cfg.dropout)
    with torch.no_grad():
        head.shortcut.weight.copy_(torch.eye(in_dim))
        head.mlp[-1].weight.zero_()
        head.mlp[-1].bias.zero_()
    return head


def check_config(cfg: TrainConfig) -> tuple[tuple[float, ...], ...]:
    """The query-zoom candidates of ``cfg``; a bad value or split fails here, before any work."""
    zooms = zoom_candidates(cfg.query_zooms)
    for split in (cfg.split, cfg.zoom_split):
        if split not in HOLDOUT_SPLITS:
            raise ValueError(f"unknown held-out split {split!r}; choose from {', '.join(HOLDOUT_SPLITS)}")
    if cfg.head_init not in ("random", "identity"):
        raise ValueError(f"head_init is random or identity, not {cfg.head_init!r}")
    return zooms


def train_head(embedder: Embedder, catalog_dir: str | Path, views: str | Path | None, out_dir: str | Path,
               cfg: TrainConfig | None = None, *, progress: StageProgress | bool = False,
               samples: list[Sample] | None = None) -> TrainResult:
    """Train, keep the best epoch on the held-out views, save ``model.safetensors`` + ``config.json``.

    The driver of the stages: with ``auto`` query zooms chosen on another held-out split than early stopping's,
    a first run (:func:`fit_run`, its held-out views those of ``cfg.zoom_split``) chooses the zooms; then the run
    that is kept, then :func:`save_head`. ``progress(stage, done, total)`` is told what each stage does, with
    true counts (``True``: tqdm bars)."""
    cfg = cfg or TrainConfig()
    zoom_choices = check_config(cfg)
    t0 = time.time()
    if samples is None:
        samples = training_samples(catalog_dir, views, cfg.label, progress if callable(progress) else None)
    zoom_scores: dict[str, float] = {}
    two_runs = len(zoom_choices) > 1 and not cfg.tune and cfg.split != cfg.zoom_split
    if two_runs:
        first = fit_run(embedder, samples, replace(cfg, split=cfg.zoom_split), zoom_choices, progress,
                        "choosing the query zooms (run 1 of 2)")
        zoom_choices, zoom_scores = (first.query_zooms,), first.zoom_scores
    result = fit_run(embedder, samples, cfg, zoom_choices, progress, "training (run 2 of 2)" if two_runs else
                     "training")
    result.zoom_scores = result.zoom_scores or zoom_scores
    result.seconds = round(time.time() - t0, 1)
    save_head(out_dir, result, embedder, samples, cfg)
    return result


@contextmanager
def seeded(seed: int):
    """Python's, torch's and numpy's global generators seeded (numpy's is the one pytorch-metric-learning's
    m-per-class sampler draws from); numpy's state is restored afterwards."""
    state = np.random.get_state()
    torch.manual_seed(seed)
    np.random.seed(seed)
    try:
        yield random.Random(seed)
    finally:
        np.random.set_state(state)


def fit_run(embedder: Embedder, samples: list[Sample], cfg: TrainConfig,
            zoom_choices: tuple[tuple[float, ...], ...], progress: StageProgress | bool, title: str) -> TrainResult:
    """One training run: the feature table, the fit loop with its stopping rule, the query-zoom choice."""
    from core.embedding.tuned import StageTap, TunedTop, tunable

    with seeded(cfg.seed) as rng:
        source, top = embedder, None
        tune = cfg.tune if tunable(embedder) else 0  # other bases: the backbone stays frozen, a head is trained
        if tune:  # cached activations below the tuned stages; a trainable copy of the stages above
            source = StageTap(embedder, tune)
            top = TunedTop(source)
        device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                              "cpu" if cfg.device == "auto" else cfg.device)
        table = FeatureTable.read(source, samples, cfg, tune, progress)
        fit = Fit(cfg, table, make_head(embedder.dim, cfg).to(device), top, device)
        result = TrainResult(Path(), "", n_heldout=table.n_heldout, tune=tune,
                             synthetic=not table.held_ids and bool(table.synthetic))
        result.zero_shot = fit.heldout_metrics(fit.frozen, None)
        if cfg.head_init == "identity":  # the base as it is is the epoch to beat
            fit.keep(False)
            result.best = {"epoch": 0, **result.zero_shot}
        fit.run(rng, result, progress, title)
    result.query_zooms = zoom_choices[0]
    if len(zoom_choices) > 1 and table.held_ids and not tune:  # tuned: the zoomed views would be activations
        result.query_zooms, result.zoom_scores = fit.choose_zooms(source, zoom_choices, progress)
    result.state, result.head_config, result.device = fit.best_state, fit.head.config(), device.type
    return result


@dataclass
class FeatureTable:
    """Cached backbone features of every view each sample trains on: ``X`` (one row per view read),
    ``rows[i]`` the rows of sample ``i`` (its original view first), ``held`` the samples held out."""

    samples: list[Sample]
    X: torch.Tensor
    rows: dict[int, list[int]]
    held: set[int]
    #: held-out synthetic shop photos: (row of X, owner sample); early stopping's queries when no sample is held
    synthetic: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def read(cls, source: Embedder, samples: list[Sample], cfg: TrainConfig, tune: int,
             progress: StageProgress | bool) -> FeatureTable:
        """Each view of the samples, the original view first: the held-out split is drawn from it and held-out
        samples are read in no other view; then the held-out synthetic photos."""
        rows: dict[int, list[int]] = defaultdict(list)
        chunks, n_rows, held = [], 0, set()
        shop = ShopViews(samples, cfg) if cfg.shop_views else None
        views = sorted({v for s in samples for v in _views_of(cfg, s)} - {"orig"})
        synthetic = [f"shop{k}" for k in range(cfg.shop_views, cfg.shop_views + cfg.shop_holdout)] if shop else []
        pairs: list[tuple[int, int]] = []
        for view in ["orig", *views, *synthetic]:
            ids = [i for i, s in enumerate(samples) if (view in _views_of(cfg, s) or view in synthetic and
                                                       s.is_catalog) and (view == "orig" or i not in held)]
            vecs, errors = cached_features(source, [samples[i].path for i in ids], view,
                                           progress=stage_progress(progress, f"reading features ({view})"),
                                           digests=[shop.key(samples[i]) if view.startswith("shop") else
                                                    samples[i].digest for i in ids],
                                           transform=shop.transform if shop else None,
                                           batch_size=8 if view.startswith("shop") else 32)  # drawn: slower
            keep = [j for j in range(len(ids)) if j not in errors]
            chunks.append(vecs[keep])
            for r, j in enumerate(keep):
                if view in synthetic:
                    pairs.append((n_rows + r, ids[j]))
                else:
                    rows[ids[j]].append(n_rows + r)
            n_rows += len(keep)
            if view == "orig":
                held = holdout_split(cfg, samples, [ids[j] for j in keep], vecs[keep], tune)
        table = cls(samples, torch.from_numpy(np.concatenate(chunks)), rows, held, pairs)
        if len({samples[i].label for i in table.train_ids}) < 2:
            raise ValueError(f"training needs readable images of at least two distinct '{cfg.label}' labels: "
                             f"{len(samples) - len(table.usable)} of {len(samples)} images could not be read")
        return table

    @property
    def usable(self) -> list[int]:
        return [i for i in range(len(self.samples)) if self.rows[i]]

    @property
    def train_ids(self) -> list[int]:
        return [i for i in self.usable if i not in self.held]

    @property
    def held_ids(self) -> list[int]:
        return [i for i in self.usable if i in self.held]

    @property
    def ref_ids(self) -> list[int]:
        return [i for i in self.usable if self.samples[i].is_catalog and i not in self.held]

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=object)

    def orig(self, src: torch.Tensor, ids: list[int]) -> torch.Tensor:
        """The original view's row of ``src`` (``X`` or a transform of it) for each sample in ``ids``."""
        return src[[self.rows[i][0] for i in ids]]

    def heldout(self, src: torch.Tensor) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray]:
        """Early stopping's queries and references (rows of ``src``) and their labels: the held-out samples'
        original views, or where none is held out, the held-out synthetic shop photos; against the catalog."""
        lab = self.labels
        if self.held_ids or not self.synthetic:
            q, q_lab = self.orig(src, self.held_ids), lab[self.held_ids]
        else:
            q, q_lab = src[[r for r, _ in self.synthetic]], lab[[i for _, i in self.synthetic]]
        return q, q_lab, self.orig(src, self.ref_ids), lab[self.ref_ids]

    @property
    def n_heldout(self) -> int:
        return len(self.held_ids) or len(self.synthetic)


class ShopViews:
    """The synthetic shop photos of a run's catalog pictures (:func:`core.data.shop_views.shop_view`): their
    backgrounds are the other catalog pictures; a photo's cache key names the picture, the effects and the
    backgrounds, so another catalog or another choice of effects is computed anew."""

    def __init__(self, samples: list[Sample], cfg: TrainConfig):
        from core.data.shop_views import AUGMENTATIONS, VERSION

        self.augs = AUGMENTATIONS if cfg.shop_augs == "all" else tuple(a for a in cfg.shop_augs.split(",") if a)
        unknown = set(self.augs) - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(f"unknown shop-view effect(s) {', '.join(sorted(unknown))}; "
                             f"choose from all or {', '.join(AUGMENTATIONS)}")
        self.paths = sorted({s.path for s in samples if s.is_catalog})
        h = hashlib.sha256(f"v{VERSION}:{','.join(self.augs)}".encode())
        for d in sorted({s.digest for s in samples if s.is_catalog}):
            h.update(d.encode())
        self.tag = h.hexdigest()[:12]
        self._backdrops: list | None = None

    def key(self, s: Sample) -> str:
        return f"{s.digest}:{self.tag}"

    def backdrops(self) -> list:
        """The catalog pictures, small, read once (the backgrounds of the synthetic photos)."""
        if self._backdrops is None:
            from core.data.images import open_image

            self._backdrops = []
            for p in self.paths[:200]:
                try:
                    img = open_image(p)
                except (OSError, ValueError):
                    continue
                img.thumbnail((320, 320))
                self._backdrops.append(img)
        return self._backdrops

    def transform(self, img, key: str):
        from core.data.shop_views import shop_view

        return shop_view(img, key, self.backdrops(), self.augs)


class Fit:
    """The fit loop: a head (and the tuned stages) trained on rows of a :class:`FeatureTable`, phase by phase,
    keeping the epoch early stopping prefers."""

    def __init__(self, cfg: TrainConfig, table: FeatureTable, head: ProjectionHead, top, device: torch.device):
        self.cfg, self.table, self.head, self.top, self.device = cfg, table, head, top, device
        samples = table.samples
        self.classes = sorted({s.label for s in samples})
        cls_of = {c: i for i, c in enumerate(self.classes)}
        self.cls_of = [cls_of[s.label] for s in samples]
        self.train_ids = table.train_ids
        self.train_ids += [i for i in self.train_ids if samples[i].is_catalog and any(not s.is_catalog for s in
                                                                                   samples)] * (cfg.catalog_repeat - 1)
        self.loss_fn = make_loss(cfg.loss, len(self.classes), cfg.out_dim).to(device)
        self.miner = make_miner(cfg.loss)
        if top is not None:
            top.to(device)
        # phase 1 trains the head on the frozen read-out of every cached row; phase 2 fine-tunes the top stages
        # with it (linear probe, then fine-tune: the tuned stages start from a head that already fits)
        self.frozen = table.X if top is None else self.embed(table.X, self.features)
        self.best_state: dict = {}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Base features of rows of X: the tuned stages' read-out, or the cached features themselves."""
        return F.normalize(self.top(x.to(self.device)), dim=-1) if self.top is not None else x.to(self.device)

    def embed(self, x: torch.Tensor, fn=None, chunk: int = 256) -> torch.Tensor:
        """``fn`` (default head on features) of rows of X, a chunk at a time, on the CPU."""
        fn = fn or (lambda b: self.head(self.features(b)))
        with torch.no_grad():
            return torch.cat([fn(x[i : i + chunk]).cpu() for i in range(0, len(x), chunk)] or [x[:0]])

    def heldout_metrics(self, src: torch.Tensor, fn) -> dict:
        """recall@1/5 of the held-out samples' original views against the catalog's, through ``fn`` (None: as
        they are)."""
        q, q_lab, ref, ref_lab = self.table.heldout(src)
        if fn is not None:
            self.head.eval()
            q, ref = self.embed(q, fn), self.embed(ref, fn)
            self.head.train()
        return recall_at(q, q_lab, ref, ref_lab)

    def phases(self) -> list[tuple[bool, int, list[dict]]]:
        cfg = self.cfg
        out = [(False, cfg.epochs, [{"params": self.head.parameters(), "lr": cfg.lr}])]
        if self.top is not None and cfg.tune_epochs:
            out.append((True, cfg.tune_epochs, [{"params": self.head.parameters(), "lr": cfg.tune_lr},
                                                {"params": self.top.parameters(), "lr": cfg.tune_lr}]))
        return out

    def run(self, rng: random.Random, result: TrainResult, progress: StageProgress | bool, title: str) -> None:
        """Every phase; ``result.history`` and ``result.best`` filled, :attr:`best_state` the kept weights."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small matmuls: one thread is several times faster than two on a busy machine
        phases = self.phases()
        n_epochs = sum(p[1] for p in phases)
        try:
            for tuned, epochs, groups in phases:
                if self.best_state:  # phase 2 starts from phase 1's best head
                    self.head.load_state_dict({k: v for k, v in self.best_state.items()
                                               if not k.startswith(TOP_PREFIX)})
                self.phase(rng, tuned, epochs, groups, result, progress, title, n_epochs)
        finally:
            torch.set_num_threads(threads)
        self.head.load_state_dict({k: v for k, v in self.best_state.items() if not k.startswith(TOP_PREFIX)})
        if self.tuned_saved:
            self.top.load_state_dict({k[len(TOP_PREFIX):]: v for k, v in self.best_state.items()
                                      if k.startswith(TOP_PREFIX)})
        self.head.eval()

    @property
    def tuned_saved(self) -> bool:
        return any(k.startswith(TOP_PREFIX) for k in self.best_state)

    def phase(self, rng: random.Random, tuned: bool, epochs: int, groups: list[dict], result: TrainResult,
              progress: StageProgress | bool, title: str, n_epochs: int) -> None:
        """One phase's epochs, until its stopping rule says stop."""
        cfg = self.cfg
        if list(self.loss_fn.parameters()):  # proxies learn faster than the head
            groups.append({"params": self.loss_fn.parameters(), "lr": groups[0]["lr"] * 100})
        opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        stopper = EarlyStopping(cfg.patience, cfg.smooth)
        if cfg.head_init == "identity" and not tuned and result.zero_shot:  # an epoch must do better than the base
            stopper.best = (result.zero_shot["recall@1"], result.zero_shot["recall@5"])
        desc = f"train-metric ({cfg.loss}{', tuning stages' if tuned else ''})"
        bar = tqdm(range(epochs), desc=desc, unit="epoch", disable=progress is not True)
        self.head.train()
        for _ in bar:
            loss = self.epoch(rng, tuned, opt)
            sched.step()
            done = len(result.history) + 1
            m = self.heldout_metrics(self.table.X if tuned else self.frozen, self.head_fn(tuned)) \
                if self.table.n_heldout else {"recall@1": 0.0, "recall@5": 0.0}
            result.history.append({"epoch": done, "tuned": tuned, "loss": loss, **m})
            bar.set_postfix(loss=f"{loss:.3f}", r1=f"{m['recall@1']:.3f}")
            if callable(progress):
                progress(f"{title}: epoch", done, n_epochs)
            improved, stop = stopper.update(m["recall@1"], m["recall@5"])
            if improved or not self.table.n_heldout:
                self.keep(tuned)
                result.best = {"epoch": done, **m}
            elif stop:
                break
        bar.close()

    def head_fn(self, tuned: bool):
        return (lambda b: self.head(self.features(b))) if tuned else (lambda b: self.head(b.to(self.device)))

    def epoch(self, rng: random.Random, tuned: bool, opt: torch.optim.Optimizer) -> float:
        """One pass of m-per-class batches, each sample seen as one of its views drawn at random; mean loss."""
        cfg, t = self.cfg, self.table
        labels = [self.cls_of[i] for i in self.train_ids]
        order = list(m_per_class(labels, cfg.m, cfg.batch_size))
        bs = min(cfg.batch_size, cfg.m * len(self.classes)) // cfg.m * cfg.m
        total, steps = 0.0, 0
        for start in range(0, len(order) - bs + 1, bs):
            batch = [self.train_ids[j] for j in order[start : start + bs]]
            rows = [rng.choice(t.rows[i]) for i in batch]
            x = self.features(t.X[rows]) if tuned else self.frozen[rows].to(self.device)
            y = torch.tensor([self.cls_of[i] for i in batch], device=self.device)
            emb = F.normalize(self.head(x), dim=-1)
            loss = self.loss_fn(emb, y, self.miner(emb, y)) if self.miner else self.loss_fn(emb, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        return total / max(steps, 1)

    def keep(self, tuned: bool) -> None:
        self.best_state = {k: v.detach().cpu().clone().contiguous() for k, v in self.head.state_dict().items()}
        if tuned:
            self.best_state |= {TOP_PREFIX + k: v.detach().cpu().clone().contiguous()
                                for k, v in self.top.state_dict().items()}

    def choose_zooms(self, source: Embedder, zoom_choices: tuple[tuple[float, ...], ...],
                     progress: StageProgress | bool) -> tuple[tuple[float, ...], dict[str, float]]:
        """The query-zoom choice on the held-out samples (:func:`choose_zooms`), with the kept head."""
        t, lab = self.table, self.table.labels
        held = t.held_ids

        def held_at(z: float) -> torch.Tensor:
            """The held-out photos' features at centre zoom ``z`` (the original view at 1)."""
            if z == 1.0:
                return t.orig(t.X, held)
            vecs, _ = cached_features(source, [t.samples[i].path for i in held], zoom_view(z),
                                      progress=stage_progress(progress, f"reading features (zoom {z:g})"),
                                      digests=[t.samples[i].digest for i in held])
            return torch.from_numpy(vecs)  # a photo that failed here read before: a zero row, counted as a miss

        with torch.no_grad():
            fn = lambda b: self.head(b.to(self.device))  # noqa: E731
            return choose_zooms(zoom_choices, lambda z: F.normalize(self.embed(held_at(z), fn), dim=-1),
                                lab[held], self.embed(t.orig(t.X, t.ref_ids), fn), lab[t.ref_ids])


def stage_progress(progress: StageProgress | bool, stage: str) -> Progress | bool:
    """A ``(done, total)`` callback that reports as ``stage``, for a :class:`StageProgress` (``True``: tqdm)."""
    if callable(progress):
        return lambda done, total: progress(stage, done, total)
    return progress


def save_head(out_dir: str | Path, result: TrainResult, embedder: Embedder, samples: list[Sample],
              cfg: TrainConfig) -> None:
    """``model.safetensors`` (the kept weights) and ``config.json`` (what produced them) in ``out_dir``."""
    from safetensors.torch import save_file

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(result.state, str(tmp))
    saved_tune = result.tune if any(k.startswith(TOP_PREFIX) for k in result.state) else 0
    config = {
        "base": embedder.spec, "base_dim": embedder.dim, "head": result.head_config, "loss": cfg.loss,
        "tta_flip": cfg.tta_flip, "tune": saved_tune, "label": cfg.label, "train": asdict(cfg),
        "data_fingerprint": fingerprint(samples), "n_samples": len(samples),
        "n_classes": len({s.label for s in samples}),
        "n_holdout": result.n_heldout, "zero_shot_holdout": result.zero_shot, "best": result.best,
        "query_zooms": list(result.query_zooms), "query_zoom_scores": result.zoom_scores,
        "query_zoom_split": cfg.zoom_split if result.zoom_scores else None,
        "history": result.history, "seconds": result.seconds, "device": result.device,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write(out / CONFIG, json.dumps(config, indent=1))
    result.model_dir, result.spec = Path(out_dir), f"{embedder.spec}+head:{out_dir}"
