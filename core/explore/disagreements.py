"""Classifier versus nearest neighbour, as the argument goes: a softmax classifier (multinomial logistic regression
on standardised embeddings) learns a label from labelled photos (the catalog's training photos, else its own
pictures: :mod:`core.explore.photo_sets`), and it and the nearest catalog product each label the same held-out
photos. A trained head's nearest catalog product labels them too, and the report counts the photos where the
classifier is right and the nearest product wrong that the trained head gets right (the cases it fixes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.config.progress import Progress
from core.data.catalog import numeric_columns, product_columns
from core.data.query_sets import load_labelled_queries
from core.embedding import DEFAULT_SPEC, Embedder
from core.embedding.available import shipped_head_spec
from core.explore.photo_sets import PhotoVectors, VectorFn, same_photos
from core.explore.prepared_classifier import Classifiers, inputs_key
from core.index import IndexBackend, row_scores
from core.search.attributes.heads import LinearHead, train_head

KINDS = ("both_right", "classifier_only", "neighbour_only", "both_wrong")
CATALOG_PICTURES = "the catalog's own pictures"
MIN_PER_CLASS = 2  # training photos per class, on average, below which no classifier is trained


def label_choices(index: IndexBackend) -> list[str]:
    """Columns a classifier can learn: ``category`` first, the other fields (not the free-text title, not numbers
    such as prices), then ``product_id``."""
    cols = product_columns(index.products)
    fields = [c for c in cols if c != "title" and c not in numeric_columns(index.products, cols)]
    return list(dict.fromkeys([*(["category"] if "category" in fields else []), *fields, "product_id"]))


def default_label_order(index: IndexBackend) -> list[str]:
    """The labels tried for the default, finest first: ``product_id`` (same product, the argument's own case),
    then :func:`label_choices`."""
    return list(dict.fromkeys(["product_id", *label_choices(index)]))


def embedders_to_compare(spec: str, catalog_root: str | Path) -> tuple[str, str | None]:
    """(pretrained, trained head) embedder specs: the head the catalog ships and the default embedder (the
    sidebar's "pretrained / trained" switch, whichever side is on); another ``+head:`` spec and its base; else
    ``spec`` and the catalog's head (None when it ships none that loads here)."""
    shipped = shipped_head_spec(catalog_root)
    if spec == shipped:
        return DEFAULT_SPEC, spec
    if "+head:" in spec:
        return spec.split("+head:", 1)[0], spec
    return spec, shipped


def display_name(index: IndexBackend, label: str, value: str) -> str:
    """How to name a label value to a person: a product's title for ``product_id``, else the value."""
    return (index.products.get(value, {}).get("title") or value) if label == "product_id" else value


def _steps(progress: Progress | bool) -> Progress:
    """The classifier's training progress: the callback given, a tqdm bar for ``True``, else nothing shown."""
    if callable(progress):
        return progress
    if progress is not True:
        return lambda i, n: None
    from tqdm.auto import tqdm

    bar = tqdm(desc="training the classifier", unit="iteration")

    def tick(i: int, n: int) -> None:
        bar.total = n
        bar.update(i - bar.n)
        if i >= n:
            bar.close()

    return tick


def train_on_vectors(label: str, X: np.ndarray, y: list[str], groups: list[str], *, C: float = 1.0,
                     max_iter: int = 500, progress: Progress | bool = False,
                     classifiers: Classifiers | None = None) -> LinearHead:
    """Fit the classifier on labelled vectors (all of them, no cross-validation; always in the warm-started steps
    that report progress, so every caller gets the same classifier); ``report["train_accuracy"]`` is its
    accuracy on them. ``classifiers``: the one fitted before on these very inputs is taken from it (prepared
    ahead: :mod:`core.explore.prepared_classifier`), and one fitted here is put in it."""
    if len(set(y)) < 2:
        raise ValueError(f"a classifier needs at least 2 values of {label!r} among its training photos")
    if len(y) < MIN_PER_CLASS * len(set(y)):
        raise ValueError(f"{len(set(y))} values of {label!r} for {len(y)} training photos: a classifier needs "
                         f"{MIN_PER_CLASS} or more photos of each on average; pick a coarser label or more photos")
    X = np.asarray(X, np.float32)
    key = inputs_key(label, X, y, C, max_iter)
    if classifiers is not None and (head := classifiers.get(key)) is not None:
        return head
    head = train_head(label, sorted(set(y)), X, y, groups, C=C, folds=0, standardise=True, max_iter=max_iter,
                      progress=_steps(progress))
    if classifiers is not None:
        classifiers.put(key, head)
    return head


def train_classifier(index: IndexBackend, label: str, *, C: float = 1.0, max_iter: int = 500,
                     progress: Progress | bool = False, classifiers: Classifiers | None = None) -> LinearHead:
    """The classifier fitted on every live catalog vector (all views of each product) labelled by ``label``."""
    labels = index.labels(label)
    ids = np.array([i for i in np.flatnonzero(index.alive) if labels[index.item_pid[i]]], np.int64)
    return train_on_vectors(label, index.vectors[ids], [labels[index.item_pid[i]] for i in ids],
                            index.item_pid[ids].tolist(), C=C, max_iter=max_iter, progress=progress,
                            classifiers=classifiers)


@dataclass
class Case:
    image: str  # the held-out photo
    label: str  # its true label
    clf_label: str
    clf_prob: float
    nn_product: str
    nn_label: str
    nn_distance: float  # cosine distance (1 - similarity) to the nearest catalog image
    nn_image: str
    clf_image: str = ""  # the catalog picture of the classifier's answer closest to the photo ("" if none)
    trained_product: str = ""  # the trained head's nearest catalog product ("" when no head was compared)
    trained_label: str = ""
    trained_distance: float = float("nan")
    trained_image: str = ""

    @property
    def kind(self) -> str:
        c, n = self.clf_label == self.label, self.nn_label == self.label
        return KINDS[0] if c and n else KINDS[1] if c else KINDS[2] if n else KINDS[3]

    @property
    def fixed(self) -> bool:
        """Classifier right, nearest product wrong, and the trained head's nearest product right."""
        return self.kind == "classifier_only" and bool(self.trained_product) and self.trained_label == self.label

    def to_dict(self) -> dict:
        return {**asdict(self), "kind": self.kind, "fixed": self.fixed}


@dataclass
class DisagreementReport:
    label: str
    cases: list[Case]
    classifier: LinearHead
    query_vectors: np.ndarray  # the held-out photos' vectors (the pretrained embedder's), one per case
    skipped: list[str] = field(default_factory=list)
    trained_on: str = CATALOG_PICTURES  # what the classifier learned from
    tested_on: str = ""
    trained_spec: str = ""  # the trained head's embedder ("" when none was compared)
    produced_by: dict = field(default_factory=dict)  # embedders, index fingerprints, photo sets

    @property
    def n_train(self) -> int:
        return int(self.classifier.report.get("n", 0))

    @property
    def accuracy_classifier(self) -> float:
        return float(np.mean([c.clf_label == c.label for c in self.cases])) if self.cases else 0.0

    @property
    def accuracy_neighbour(self) -> float:
        return float(np.mean([c.nn_label == c.label for c in self.cases])) if self.cases else 0.0

    @property
    def accuracy_trained(self) -> float | None:
        """The trained head's nearest-product accuracy (None when no head was compared)."""
        if not self.trained_spec or not self.cases:
            return None
        return float(np.mean([c.trained_label == c.label for c in self.cases]))

    def counts(self) -> dict[str, int]:
        got = Counter(c.kind for c in self.cases)
        return {k: got.get(k, 0) for k in KINDS}

    def of_kind(self, kind: str) -> list[Case]:
        """Cases of one kind, most confident classifier first."""
        return sorted((c for c in self.cases if c.kind == kind), key=lambda c: -c.clf_prob)

    def fixed(self) -> list[Case]:
        """The "classifier right, neighbour wrong" cases whose trained head's nearest product is right."""
        return [c for c in self.of_kind("classifier_only") if c.fixed]

    def disagreement_confusion(self) -> dict[tuple[str, str], int]:
        """(classifier's class, neighbour's class) -> count, over photos where the two answers differ."""
        return dict(Counter((c.clf_label, c.nn_label) for c in self.cases if c.clf_label != c.nn_label)
                    .most_common())

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "trained_on": self.trained_on,
            "tested_on": self.tested_on,
            "n_train": self.n_train,
            "n_queries": len(self.cases),
            "n_classes": len(self.classifier.values),
            "classifier_train_accuracy": self.classifier.report["train_accuracy"],
            "accuracy_classifier": self.accuracy_classifier,
            "accuracy_neighbour": self.accuracy_neighbour,
            "trained_spec": self.trained_spec,
            "accuracy_trained_neighbour": self.accuracy_trained,
            "counts": self.counts(),
            "fixed_by_trained_head": len(self.fixed()) if self.trained_spec else None,
            "disagreement_confusion": [{"classifier": a, "neighbour": b, "count": n}
                                       for (a, b), n in self.disagreement_confusion().items()],
            "cases": [c.to_dict() for c in self.cases if c.kind in ("classifier_only", "neighbour_only")],
            "skipped": self.skipped,
            "produced_by": self.produced_by,
        }


def _rows_with_vectors(vectors: VectorFn, embedder: Embedder, rows: list[tuple[Path, str]], desc: str,
                       progress: Progress | bool) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """(n, dim) vectors of ``rows`` (zero rows where unusable), the usable mask, and the reasons."""
    vecs, errors = vectors(embedder, [p for p, _ in rows], desc, progress)
    full = np.zeros((len(rows), embedder.dim), np.float32)
    ok = np.array([i not in errors for i in range(len(rows))], bool)
    full[ok] = vecs
    return full, ok, errors


def class_pictures(index: IndexBackend, label: str, vecs: np.ndarray, answers: list[str]) -> list[str]:
    """For each photo, the catalog picture closest to it among the products whose ``label`` is its answer
    ("" when no live product has that value)."""
    labels = index.labels(label)
    rows: dict[str, list[int]] = {}
    for i in np.flatnonzero(index.alive):
        rows.setdefault(labels[index.item_pid[i]], []).append(int(i))
    out = []
    for v, a in zip(vecs, answers):
        ids = rows.get(a)
        out.append(index.image_path(ids[int(np.argmax(row_scores(index.vectors[ids], v)))]) if ids else "")
    return out


def compare(index: IndexBackend, embedder: Embedder, queries: str | Path, label: str = "category", *,
            root: str | Path | None = None, train: str | Path | None = None, train_root: str | Path | None = None,
            trained: tuple[IndexBackend, Embedder] | None = None, classifier: LinearHead | None = None,
            progress: Progress | bool = False, vectors: VectorFn | None = None,
            classifiers: Classifiers | None = None) -> DisagreementReport:
    """Label every held-out photo of ``queries`` with the classifier and with its nearest catalog product
    (exact search), and with the nearest product of ``trained`` (the catalog's index by a trained head, and that
    embedder) where given.

    The classifier learns ``label`` from the photos of ``train`` (a CSV or folder tree; image paths relative to
    ``train_root``, default its folder), else from the catalog's own pictures; a held-out photo that is also a
    training photo is left out. ``vectors`` embeds photos (default: a :class:`PhotoVectors` for this call);
    ``classifiers`` holds classifiers already fitted on the same inputs (see :func:`train_on_vectors`)."""
    index.check_embedder(embedder)
    vectors = vectors or PhotoVectors()
    labels = index.labels(label)
    rows, skipped = load_labelled_queries(queries, label, index.products, root=root)
    if train is not None:
        train_rows, _ = load_labelled_queries(train, label, index.products, root=train_root)
        train_rows = [(p, y) for p, y in train_rows if y]
        taken = [p for p, _ in train_rows]
    else:
        taken = [Path(index.image_path(int(i))) for i in np.flatnonzero(index.alive)]
    both = same_photos(taken, [p for p, _ in rows])
    skipped += [f"{p.name}: also a training photo, so not tested" for p, _ in rows if p.resolve() in both]
    rows = [(p, y) for p, y in rows if p.resolve() not in both]
    if not rows:
        first = f" (first: {skipped[0]})" if skipped else ""
        hint = "; are the image paths relative to the CSV (or to --root)?" if Path(queries).is_file() else ""
        raise ValueError(f"none of the queries could be used{first}{hint}")
    if classifier is None and train is not None:
        tv, tok, _ = _rows_with_vectors(vectors, embedder, train_rows, "training photos", progress)
        used = [r for r, k in zip(train_rows, tok) if k]
        if not used:
            raise ValueError(f"none of the training photos of {Path(train).name} could be used")
        classifier = train_on_vectors(label, tv[tok], [y for _, y in used], [str(p) for p, _ in used],
                                      progress=progress, classifiers=classifiers)
    classifier = classifier or train_classifier(index, label, progress=progress, classifiers=classifiers)
    qv, ok, errors = _rows_with_vectors(vectors, embedder, rows, "held-out photos", progress)
    if trained is not None:
        t_index, t_emb = trained
        t_index.check_embedder(t_emb)
        hv, h_ok, h_errors = _rows_with_vectors(vectors, t_emb, rows, "held-out photos (trained head)", progress)
        errors = {**h_errors, **errors}
        ok &= h_ok
    skipped += [f"{rows[i][0].name}: {e}" for i, e in errors.items()]
    if not ok.any():
        raise ValueError(f"none of the queries could be used (first: {skipped[0]})")
    rows, qv = [r for r, k in zip(rows, ok) if k], qv[ok]
    clf, prob = classifier.predict(qv)
    hits = index.search(qv, 1, exact=True)
    pictures = class_pictures(index, label, qv, clf)
    cases = [Case(str(path), want, c, float(p), h[0].product_id, labels.get(h[0].product_id, ""),
                  round(1.0 - h[0].score, 6), h[0].image, pic)
             for (path, want), c, p, h, pic in zip(rows, clf, prob, hits, pictures)]
    produced = {"embedder": embedder.spec, "dim": embedder.dim, "index": index.fingerprint, "label": label,
                "queries": str(queries), "train": str(train) if train is not None else CATALOG_PICTURES}
    trained_spec = ""
    if trained is not None:
        t_labels = t_index.labels(label)
        for case, h in zip(cases, t_index.search(hv[ok], 1, exact=True)):
            case.trained_product, case.trained_image = h[0].product_id, h[0].image
            case.trained_label, case.trained_distance = t_labels.get(h[0].product_id, ""), round(1.0 - h[0].score, 6)
        trained_spec = t_emb.spec
        produced |= {"trained": t_emb.spec, "trained_dim": t_emb.dim, "trained_index": t_index.fingerprint}
    return DisagreementReport(label, cases, classifier, qv, skipped,
                              Path(train).name if train is not None else CATALOG_PICTURES, Path(queries).name,
                              trained_spec, produced)


def first_with_cases(labels: Iterable[str], report: Callable[[str], DisagreementReport],
                     errors: tuple[type[BaseException], ...] = (ValueError,)) -> DisagreementReport:
    """The report of the first label on which the classifier is right where the nearest product is wrong for
    some photo; else the first report that could be made. Raises the first error when none could."""
    first: DisagreementReport | None = None
    problem: BaseException | None = None
    for label in labels:
        try:
            rep = report(label)
        except errors as e:
            problem = problem or e
            continue
        if rep.counts()["classifier_only"]:
            return rep
        first = first or rep
    if first is None:
        raise problem or ValueError("no label to compare on")
    return first


@dataclass
class Regions:
    """The classifier's decision regions drawn on the 2D map: ``z[j, i]`` is the class index at (xs[i], ys[j])."""

    xs: np.ndarray
    ys: np.ndarray
    z: np.ndarray
    classes: list[str]


def decision_regions(head: LinearHead, coords: np.ndarray, vectors: np.ndarray, *, grid: int = 120,
                     k: int = 10) -> Regions:
    """Shade the 2D map by the classifier's answer.

    A full-space classifier has no 2D boundary, so each catalog point gets the class the head predicts
    for its full-space vector, and every grid cell takes the distance-weighted vote of those predictions
    among its nearest catalog points on the map: ``k`` of them, or fewer when classes have fewer points
    each (about one image per class for ``product_id``, where a wide vote would only blur).
    UMAP's inverse_transform is not used: it is slow and invents vectors in regions with no data.
    """
    from sklearn.neighbors import KNeighborsClassifier

    pred, _ = head.predict(vectors)
    classes = head.values
    y = np.array([classes.index(p) for p in pred])
    k = max(1, min(k, len(y) // max(1, len(set(y.tolist())))))
    knn = KNeighborsClassifier(n_neighbors=k, weights="distance").fit(coords, y)
    pad = 0.05 * (coords.max(0) - coords.min(0) + 1e-6)
    lo, hi = coords.min(0) - pad, coords.max(0) + pad
    xs, ys = np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid)
    gx, gy = np.meshgrid(xs, ys)
    z = knn.predict(np.c_[gx.ravel(), gy.ravel()]).reshape(grid, grid)
    return Regions(xs, ys, z, classes)
