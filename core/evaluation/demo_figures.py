"""The real-photo demo's figures, on its held-out example photos (``queries-examples.csv``): how often the nearest
catalog product is the right one with the pretrained embedder and with the head trained for the demo, against a
classifier trained on the same training photos (``queries-train.csv``) with the pretrained embedder.

Every figure is given for the product (``product_id``) and for its coarse class (``category``): a nearest
neighbour is right for the class when the nearest product is of the photo's class.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.config.progress import Progress
from core.embedding import Embedder
from core.evaluation.evaluate import evaluate
from core.index import IndexBackend
from core.index.workspace import ensure_index

LABELS = ("product_id", "category")


@dataclass
class DemoFigures:
    n_examples: int
    n_train: int
    pretrained: dict[str, float] = field(default_factory=dict)  # label -> nearest-neighbour accuracy
    classifier: dict[str, float] = field(default_factory=dict)  # label -> classifier accuracy
    trained: dict[str, float] = field(default_factory=dict)  # label -> nearest-neighbour accuracy, trained head
    #: example image (as in the CSV) -> (rank of its product with the pretrained embedder, with the trained head)
    ranks: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)

    def table(self) -> str:
        """A Markdown table of the figures."""
        rows = ["| on the example photos | product | category |", "|---|---|---|"]
        for name, d in (("nearest catalog picture, pretrained", self.pretrained),
                        ("classifier on the training photos, pretrained", self.classifier),
                        ("nearest catalog picture, trained head", self.trained)):
            rows.append(f"| {name} | {d.get('product_id', 0):.3f} | {d.get('category', 0):.3f} |")
        return "\n".join(rows)


def _rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def nn_accuracy(index: IndexBackend, embedder: Embedder, examples: Path,
                progress: Progress | bool = False) -> tuple[dict[str, float], dict[str, int | None]]:
    """Nearest-neighbour accuracy (plain distance, as the argument has it) per label, and each example's rank of
    its product."""
    ev = evaluate(index, embedder, examples, label="product_id", rank="distance", progress=progress)
    cat_of = {pid: f.get("category", "") for pid, f in index.products.items()}
    n = max(len(ev.queries), 1)
    acc = {"product_id": sum(q.rank == 1 for q in ev.queries) / n,
           "category": sum(bool(q.top) and cat_of.get(q.top[0][0]) == cat_of.get(q.label) for q in ev.queries) / n}
    root = examples.parent
    ranks = {Path(q.image).resolve().relative_to(root.resolve()).as_posix(): q.rank for q in ev.queries}
    return acc, ranks


def classifier_accuracy(embedder: Embedder, root: Path, train: list[dict], examples: list[dict]) -> dict[str, float]:
    """The classifier of Classifier vs neighbours (:func:`core.explore.disagreements.train_on_vectors`) on the
    embedder's vectors of the training photos, scored on the examples, per label."""
    from core.embedding.batch import embed_sources
    from core.explore.disagreements import train_on_vectors

    def vectors(rows: list[dict]) -> np.ndarray:
        vecs, errors = embed_sources(embedder, [root / r["image"] for r in rows])
        if errors:
            raise ValueError(f"unreadable demo photo: {next(iter(errors.values()))}")
        return vecs

    X, Xe = vectors(train), vectors(examples)
    out = {}
    for label in LABELS:
        clf = train_on_vectors(label, X, [r[label] for r in train], [r["image"] for r in train])
        out[label] = float(np.mean(np.array(clf.predict(Xe)[0]) == np.array([r[label] for r in examples])))
    return out


def demo_figures(demo_root: str | Path, pretrained: Embedder, trained: Embedder | None, *,
                 progress: Progress | bool = False) -> DemoFigures:
    """The figures of the demo at ``demo_root`` (its catalog indexed in the cache as the app does)."""
    root = Path(demo_root)
    examples_csv = root / "queries-examples.csv"
    train, examples = _rows(root / "queries-train.csv"), _rows(examples_csv)
    fig = DemoFigures(len(examples), len(train))
    fig.pretrained, before = nn_accuracy(ensure_index(root / "catalog", pretrained, progress), pretrained,
                                         examples_csv, progress)
    fig.classifier = classifier_accuracy(pretrained, root, train, examples)
    after: dict[str, int | None] = {}
    if trained is not None:
        fig.trained, after = nn_accuracy(ensure_index(root / "catalog", trained, progress), trained, examples_csv,
                                         progress)
    fig.ranks = {img: (before.get(img), after.get(img)) for img in (r["image"] for r in examples)}
    return fig


def first_example_order(fig: DemoFigures) -> list[str]:
    """The examples the app should offer first: those the trained head finds at #1 and the pretrained embedder
    misses (the difference, on the first photo a user sees), then those both find; the rest keep their order."""
    fixed = [img for img, (b, a) in fig.ranks.items() if a == 1 and b != 1]
    both = [img for img, (b, a) in fig.ranks.items() if a == 1 and b == 1]
    return fixed[:1] + both[:1] + fixed[1:]
