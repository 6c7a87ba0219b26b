"""Fit a projection head on cached frozen backbone features (``python -m core train-metric``).

Training samples are the catalog images (each product's own view, several augmented copies) and the labelled
training views; both share the product's label. Part of the views is held out: training stops when their
recall@1 against the catalog stops improving, and the best epoch is kept.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from core.config.defaults import METRIC_BASE_SPEC
from core.config.progress import Progress
from core.config.store import atomic_path, atomic_write
from core.data.catalog import file_digest, load_catalog
from core.embedding import Embedder
from core.embedding.decode import MAX_ZOOMS, MIN_ZOOM, valid_zooms
from core.embedding.head import CONFIG, TOP_PREFIX, WEIGHTS, ProjectionHead
from core.evaluation import metrics
from core.metric.features import cached_features, zoom_view
from core.metric.losses import make_loss
from core.metric.miners import make_miner
from core.metric.samplers import m_per_class
from core.metric.splits import SPLITS, appearance_holdout, listed_holdout
from core.metric.stopping import EarlyStopping

#: frozen base a head is trained on by default: multi-scale read-out of efficientnet-lite0 (stages 5-7 and the
#: final map, see :mod:`core.embedding.efficientnet`); chosen on an appearance-disjoint split of the train views
#: over the final-map average (``efficientnet-lite0``), GeM and multi-scale GeM (docs/metric_learning.md)
BASE_SPEC = METRIC_BASE_SPEC


@dataclass
class TrainConfig:
    loss: str = "supcon"  # chosen over proxy-anchor on an appearance-disjoint split of the train views (docs)
    epochs: int = 40  # head on the frozen read-out (phase 1)
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
    split: str = "listed"  # which views early stopping holds out (core.metric.splits): the last listed, or
    # "appearance" (look-alike groups least like the catalog image; it stops early on a harder set, but the
    # head then misses the most varied photos: 0.740 vs 0.801 grocery val recall@1, docs/metric_learning.md)
    query_zooms: str = "auto"  # whole-photo queries embedded as the mean of these centre zooms: "auto" picks
    # one of ZOOM_CANDIDATES on a first run held out by zoom_split; or "1" (off), or a list like "0.8,0.65,0.5"
    zoom_split: str = "appearance"  # the held-out split "auto" chooses the zooms on (the listed one cannot
    # tell them apart: its photos are near-copies of training photos)
    label: str = "product_id"  # catalog/views column that says which samples belong together
    catalog_augs: int = 5  # cached augmented copies of each catalog image
    catalog_flip: bool = True  # also train on mirrored catalog images
    view_flip: bool = False  # also train on mirrored training views (one more backbone pass over them)
    view_augs: int = 2  # cached augmented copies of each training view (one backbone pass each; chosen, docs)
    catalog_repeat: int = 4  # catalog images are rare next to shop photos: draw them more often
    tta_flip: bool = True  # the trained embedder averages each image with its mirror image
    tune: int = 0  # last backbone stages fine-tuned on cached activations after the head (0: frozen backbone;
    # 1 did not pay on grocery val, docs/metric_learning.md)
    tune_epochs: int = 8  # phase 2: the head and the tuned stages together (each epoch runs those stages)
    tune_lr: float = 1e-4  # learning rate of phase 2
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


def training_samples(catalog_dir: str | Path, views: str | Path | None, label: str = "product_id") -> list[Sample]:
    """Catalog images and labelled views (``views.csv`` with ``image`` and the ``label`` column)."""
    from core.data.queries import read_queries

    cat = load_catalog(catalog_dir)
    view_samples = []
    if views:
        v = Path(views)
        rows, _ = read_queries(v / "views.csv" if v.is_dir() else v, label)
        view_samples = [Sample(p, lab, False, file_digest(p)) for p, lab in rows if lab and p.is_file()]
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
        return ["orig"] + (["flip"] if cfg.catalog_flip else []) + [f"aug{k}" for k in range(cfg.catalog_augs)]
    return ["orig"] + (["flip"] if cfg.view_flip else []) + [f"aug{k}" for k in range(cfg.view_augs)]


def fingerprint(samples: list[Sample]) -> str:
    h = hashlib.sha256()
    for s in sorted(samples, key=lambda s: (s.digest, s.label, s.is_catalog)):
        h.update(f"{s.digest} {s.label} {int(s.is_catalog)}\n".encode())
    return h.hexdigest()[:16]


def train_head(embedder: Embedder, catalog_dir: str | Path, views: str | Path | None, out_dir: str | Path,
               cfg: TrainConfig | None = None, *, progress: Progress | bool = False,
               samples: list[Sample] | None = None) -> TrainResult:
    """Train, keep the best epoch on the held-out views, save ``model.safetensors`` + ``config.json``."""
    from safetensors.torch import save_file

    cfg = cfg or TrainConfig()
    zoom_choices = zoom_candidates(cfg.query_zooms)  # a bad value fails before any work
    for split in (cfg.split, cfg.zoom_split):
        if split not in SPLITS:
            raise ValueError(f"unknown held-out split {split!r}; choose from {', '.join(SPLITS)}")
    t0 = time.time()
    samples = samples if samples is not None else training_samples(catalog_dir, views, cfg.label)
    zoom_scores: dict[str, float] = {}
    if len(zoom_choices) > 1 and not cfg.tune and cfg.split != cfg.zoom_split:
        # a first head, held out as zoom_split, chooses the zooms; this run trains the head that is kept
        with tempfile.TemporaryDirectory() as tmp:  # a progress callback sees both runs as one: 2 x the epochs
            first = train_head(embedder, catalog_dir, views, tmp, replace(cfg, split=cfg.zoom_split),
                               progress=(lambda i, n: progress(i, 2 * n)) if callable(progress) else progress,
                               samples=samples)
        zoom_choices, zoom_scores = (first.query_zooms,), first.zoom_scores
        if callable(progress):
            progress = (lambda report: lambda i, n: report(n + i, 2 * n))(progress)
    rng = random.Random(cfg.seed)  # seeded after the first run: the kept head is the same with or without it
    torch.manual_seed(cfg.seed)
    from pytorch_metric_learning.utils import common_functions

    common_functions.NUMPY_RANDOM = np.random.RandomState(cfg.seed)  # the m-per-class sampler's draws

    from core.embedding.tuned import StageTap, TunedTop, tunable

    source, top = embedder, None
    tune = cfg.tune if tunable(embedder) else 0  # other bases: the backbone stays frozen, a head is trained
    if tune:  # cached activations below the tuned stages; a trainable copy of the stages above
        source = StageTap(embedder, tune)
        top = TunedTop(source)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          "cpu" if cfg.device == "auto" else cfg.device)
    # cached features of every view each sample needs: rows of X, owner sample of each row; the original view
    # of every sample first, which the held-out split is drawn from
    rows: dict[int, list[int]] = defaultdict(list)
    chunks = []
    n_rows = 0
    held: set[int] = set()
    for view in ["orig", *sorted({v for s in samples for v in _views_of(cfg, s)} - {"orig"})]:
        ids = [i for i, s in enumerate(samples) if view in _views_of(cfg, s) and (view == "orig" or i not in held)]
        vecs, errors = cached_features(source, [samples[i].path for i in ids], view, progress=progress is True,
                                       digests=[samples[i].digest for i in ids])
        keep = [j for j in range(len(ids)) if j not in errors]
        chunks.append(vecs[keep])
        for r, j in enumerate(keep):
            rows[ids[j]].append(n_rows + r)
        n_rows += len(keep)
        if view == "orig":
            held = holdout_split(cfg, samples, [ids[j] for j in keep], vecs[keep], tune)
    X = torch.from_numpy(np.concatenate(chunks))
    classes = sorted({s.label for s in samples})
    cls_of = {c: i for i, c in enumerate(classes)}

    usable = [i for i in range(len(samples)) if rows[i]]
    train_ids = [i for i in usable if i not in held]
    if len({samples[i].label for i in train_ids}) < 2:
        raise ValueError(f"training needs readable images of at least two distinct '{cfg.label}' labels: "
                         f"{len(samples) - len(usable)} of {len(samples)} images could not be read")
    train_ids += [i for i in train_ids if samples[i].is_catalog and any(not s.is_catalog for s in samples)] * (
        cfg.catalog_repeat - 1)
    held_ids = [i for i in usable if i in held]
    ref_ids = [i for i in usable if samples[i].is_catalog and i not in held]
    lab = np.array([s.label for s in samples], dtype=object)

    head = ProjectionHead(embedder.dim, cfg.out_dim, cfg.hidden, cfg.dropout).to(device)
    loss_fn = make_loss(cfg.loss, len(classes), cfg.out_dim).to(device)
    miner = make_miner(cfg.loss)

    def features(x: torch.Tensor) -> torch.Tensor:
        """Base features of rows of X: the tuned stages' read-out, or the cached features themselves."""
        return F.normalize(top(x.to(device)), dim=-1) if top is not None else x.to(device)

    def embed(x: torch.Tensor, fn=None, chunk: int = 256) -> torch.Tensor:
        """``fn`` (default head on features) of rows of X, a chunk at a time, on the CPU."""
        fn = fn or (lambda b: head(features(b)))
        with torch.no_grad():
            return torch.cat([fn(x[i : i + chunk]).cpu() for i in range(0, len(x), chunk)] or [x[:0]])

    if top is not None:
        top.to(device)
    # phase 1 trains the head on the frozen read-out of every cached row; phase 2 fine-tunes the top stages
    # with it (linear probe, then fine-tune: the tuned stages start from a head that already fits)
    frozen = X if top is None else embed(X, features)
    train_labels = [cls_of[samples[i].label] for i in train_ids]

    def rows_in(rs: list[int], tuned: bool) -> torch.Tensor:
        return features(X[rs]) if tuned else frozen[rs].to(device)

    def holdout_metrics(tuned: bool) -> dict:
        head.eval()
        fn = (lambda b: head(features(b))) if tuned else (lambda b: head(b.to(device)))
        src = X if tuned else frozen
        m = recall_at(embed(orig_of(src, held_ids), fn), lab[held_ids], embed(orig_of(src, ref_ids), fn),
                      lab[ref_ids])
        head.train()
        return m

    def orig_of(src: torch.Tensor, ids: list[int]) -> torch.Tensor:
        return src[[rows[i][0] for i in ids]]

    result = TrainResult(Path(out_dir), "", n_heldout=len(held_ids), tune=tune)
    result.zero_shot = recall_at(orig_of(frozen, held_ids), lab[held_ids], orig_of(frozen, ref_ids), lab[ref_ids])
    phases = [(False, cfg.epochs, [{"params": head.parameters(), "lr": cfg.lr}])]
    if top is not None and cfg.tune_epochs:
        phases.append((True, cfg.tune_epochs, [{"params": head.parameters(), "lr": cfg.tune_lr},
                                                 {"params": top.parameters(), "lr": cfg.tune_lr}]))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matmuls: one thread is several times faster than two on a busy machine
    n_epochs, done = sum(p[1] for p in phases), 0
    best_state: dict = {}
    for tuned, epochs, groups in phases:
        if best_state:  # phase 2 starts from phase 1's best head
            head.load_state_dict({k: v for k, v in best_state.items() if not k.startswith(TOP_PREFIX)})
        if list(loss_fn.parameters()):  # proxies learn faster than the head
            groups.append({"params": loss_fn.parameters(), "lr": groups[0]["lr"] * 100})
        opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        stopper = EarlyStopping(cfg.patience, cfg.smooth)
        desc = f"train-metric ({cfg.loss}{', tuning stages' if tuned else ''})"
        bar = tqdm(range(epochs), desc=desc, unit="epoch", disable=progress is not True)
        head.train()
        for _ in bar:
            order = list(m_per_class(train_labels, cfg.m, cfg.batch_size))
            bs = min(cfg.batch_size, cfg.m * len(classes)) // cfg.m * cfg.m
            total, steps = 0.0, 0
            for start in range(0, len(order) - bs + 1, bs):
                batch = [train_ids[j] for j in order[start : start + bs]]
                x = rows_in([rng.choice(rows[i]) for i in batch], tuned)
                y = torch.tensor([cls_of[samples[i].label] for i in batch], device=device)
                emb = F.normalize(head(x), dim=-1)
                loss = loss_fn(emb, y, miner(emb, y)) if miner else loss_fn(emb, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, steps = total + loss.item(), steps + 1
            sched.step()
            done += 1
            m = holdout_metrics(tuned) if held_ids else {"recall@1": 0.0, "recall@5": 0.0}
            result.history.append({"epoch": done, "tuned": tuned, "loss": total / max(steps, 1), **m})
            bar.set_postfix(loss=f"{total / max(steps, 1):.3f}", r1=f"{m['recall@1']:.3f}")
            if callable(progress):
                progress(done, n_epochs)
            improved, stop = stopper.update(m["recall@1"], m["recall@5"])
            if improved or not held_ids:
                best_state = {k: v.detach().cpu().clone().contiguous() for k, v in head.state_dict().items()}
                if tuned:
                    best_state |= {TOP_PREFIX + k: v.detach().cpu().clone().contiguous()
                                   for k, v in top.state_dict().items()}
                result.best = {"epoch": done, **m}
            elif stop:
                break
        bar.close()
    torch.set_num_threads(threads)
    saved_tune = tune if any(k.startswith(TOP_PREFIX) for k in best_state) else 0
    head.load_state_dict({k: v for k, v in best_state.items() if not k.startswith(TOP_PREFIX)})
    if saved_tune:
        top.load_state_dict({k[len(TOP_PREFIX):]: v for k, v in best_state.items() if k.startswith(TOP_PREFIX)})
    head.eval()

    def held_at(z: float) -> torch.Tensor:
        """The held-out photos' features at centre zoom ``z`` (the original view at 1)."""
        if z == 1.0:
            return orig_of(X, held_ids)
        vecs, _ = cached_features(source, [samples[i].path for i in held_ids], zoom_view(z),
                                  digests=[samples[i].digest for i in held_ids])
        return torch.from_numpy(vecs)  # a photo that failed here read before: a zero row, counted as a miss

    result.query_zooms, result.zoom_scores = zoom_choices[0], zoom_scores
    if len(zoom_choices) > 1 and held_ids and not tune:  # tuned: the zoomed views would be activations
        with torch.no_grad():
            fn = lambda b: head(b.to(device))  # noqa: E731
            result.query_zooms, result.zoom_scores = choose_zooms(
                zoom_choices, lambda z: F.normalize(embed(held_at(z), fn), dim=-1), lab[held_ids],
                embed(orig_of(X, ref_ids), fn), lab[ref_ids])

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(best_state, str(tmp))
    result.seconds = round(time.time() - t0, 1)
    config = {
        "base": embedder.spec, "base_dim": embedder.dim, "head": head.config(), "loss": cfg.loss,
        "tta_flip": cfg.tta_flip, "tune": saved_tune, "label": cfg.label, "train": asdict(cfg),
        "data_fingerprint": fingerprint(samples), "n_samples": len(samples), "n_classes": len(classes),
        "n_holdout": len(held_ids), "zero_shot_holdout": result.zero_shot, "best": result.best,
        "query_zooms": list(result.query_zooms), "query_zoom_scores": result.zoom_scores,
        "query_zoom_split": cfg.zoom_split if result.zoom_scores else None,
        "history": result.history, "seconds": result.seconds, "device": device.type,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write(out / CONFIG, json.dumps(config, indent=1))
    result.spec = f"{embedder.spec}+head:{out_dir}"
    return result
