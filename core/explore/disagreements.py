"""Classifier versus nearest neighbour: a softmax head trained on the catalog's embeddings (the attribute
filters' logistic head, on standardised features), and where its answer differs from the label of the query's
nearest catalog product in the full embedding space."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.config.progress import Progress
from core.data.catalog import product_columns
from core.data.queries import load_labelled_queries
from core.embedding import Embedder
from core.embedding.query import embed_queries
from core.index import IndexBackend
from core.search.attributes.heads import LinearHead, train_head

KINDS = ("both_right", "classifier_only", "neighbour_only", "both_wrong")


def label_choices(index: IndexBackend) -> list[str]:
    """Columns a classifier can learn: ``category`` first, the other fields (not the free-text title), then
    ``product_id``."""
    fields = [c for c in product_columns(index.products) if c != "title"]
    return list(dict.fromkeys([*(["category"] if "category" in fields else []), *fields, "product_id"]))


def train_classifier(index: IndexBackend, label: str, *, C: float = 1.0, max_iter: int = 500) -> LinearHead:
    """Fit the head on every live catalog vector (all views of each product) labelled by ``label``: all of
    them, no cross-validation; ``report["train_accuracy"]`` is its accuracy on them."""
    labels = index.labels(label)
    ids = np.array([i for i in np.flatnonzero(index.alive) if labels[index.item_pid[i]]], np.int64)
    y = [labels[index.item_pid[i]] for i in ids]
    if len(set(y)) < 2:
        raise ValueError(f"a classifier needs at least 2 values of {label!r} among live products")
    X = np.asarray(index.vectors[ids], np.float32)
    return train_head(label, sorted(set(y)), X, y, index.item_pid[ids].tolist(), C=C, folds=0, standardise=True,
                      max_iter=max_iter)


@dataclass
class Case:
    image: str  # the query
    label: str  # its true label
    clf_label: str
    clf_prob: float
    nn_product: str
    nn_label: str
    nn_distance: float  # cosine distance (1 - similarity) to the nearest catalog image
    nn_image: str

    @property
    def kind(self) -> str:
        c, n = self.clf_label == self.label, self.nn_label == self.label
        return KINDS[0] if c and n else KINDS[1] if c else KINDS[2] if n else KINDS[3]

    def to_dict(self) -> dict:
        return {**asdict(self), "kind": self.kind}


@dataclass
class DisagreementReport:
    label: str
    cases: list[Case]
    head: LinearHead
    query_vectors: np.ndarray
    skipped: list[str] = field(default_factory=list)

    @property
    def accuracy_classifier(self) -> float:
        return float(np.mean([c.clf_label == c.label for c in self.cases])) if self.cases else 0.0

    @property
    def accuracy_neighbour(self) -> float:
        return float(np.mean([c.nn_label == c.label for c in self.cases])) if self.cases else 0.0

    def counts(self) -> dict[str, int]:
        got = Counter(c.kind for c in self.cases)
        return {k: got.get(k, 0) for k in KINDS}

    def of_kind(self, kind: str) -> list[Case]:
        """Cases of one kind, most confident classifier first."""
        return sorted((c for c in self.cases if c.kind == kind), key=lambda c: -c.clf_prob)

    def disagreement_confusion(self) -> dict[tuple[str, str], int]:
        """(classifier's class, neighbour's class) -> count, over queries where the two answers differ."""
        return dict(Counter((c.clf_label, c.nn_label) for c in self.cases if c.clf_label != c.nn_label)
                    .most_common())

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "n_queries": len(self.cases),
            "n_classes": len(self.head.values),
            "classifier_train_accuracy": self.head.report["train_accuracy"],
            "accuracy_classifier": self.accuracy_classifier,
            "accuracy_neighbour": self.accuracy_neighbour,
            "counts": self.counts(),
            "disagreement_confusion": [{"classifier": a, "neighbour": b, "count": n}
                                       for (a, b), n in self.disagreement_confusion().items()],
            "cases": [c.to_dict() for c in self.cases if c.kind in ("classifier_only", "neighbour_only")],
            "skipped": self.skipped,
        }


def compare(index: IndexBackend, embedder: Embedder, queries: str | Path, label: str = "category", *,
            root: str | Path | None = None, head: LinearHead | None = None,
            progress: Progress | bool = False) -> DisagreementReport:
    """Classify every labelled query with the head and with its nearest catalog product (exact search)."""
    index.check_embedder(embedder)
    head = head or train_classifier(index, label)
    rows, skipped = load_labelled_queries(queries, label, index.products, root=root)
    found, errors = embed_queries(embedder, [p for p, _ in rows], progress=progress)  # the one query path
    skipped += [f"{rows[i][0].name}: {e}" for i, e in errors.items()]
    rows = [r for i, r in enumerate(rows) if i not in errors]
    vecs = np.stack([q.vector for q in found if q is not None]) if rows else np.zeros((0, embedder.dim), np.float32)
    labels = index.labels(label)
    if not rows:
        first = f" (first: {skipped[0]})" if skipped else ""
        hint = "; are the image paths relative to the CSV (or to --root)?" if Path(queries).is_file() else ""
        raise ValueError(f"none of the queries could be used{first}{hint}")
    cases = []
    if rows:
        clf, prob = head.predict(vecs)
        hits = index.search(vecs, 1, exact=True)
        for (path, want), c, p, h in zip(rows, clf, prob, hits):
            nn = h[0]
            cases.append(Case(str(path), want, c, float(p), nn.product_id, labels.get(nn.product_id, ""),
                              round(1.0 - nn.score, 6), nn.image))
    return DisagreementReport(label, cases, head, vecs, skipped)


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
