"""Learned heads: a logistic regression on the embeddings per categorical catalog column (attribute filters, and
the classifier the classifier-versus-neighbour page compares with nearest neighbours)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.config.progress import Progress
from core.data.catalog import column_values, numeric_columns
from core.search.attributes.base import beats_chance, softmax

MIN_PER_CLASS = 5
STEP = 25  # solver iterations between progress reports
MAX_CLASSES = 50
OTHER = "(other)"  # the pooled rare values of a column, when they are numerous enough to learn


def pooled(label: str, values: list[str]) -> str:
    """``label`` itself when it is one of ``values``, else :data:`OTHER` where pooled (else "")."""
    return label if label in values else (OTHER if label and OTHER in values else "")


@dataclass
class LinearHead:
    """``score(embedding) -> {value: probability}`` for one catalog column (softmax of a linear map)."""

    name: str
    values: list[str]
    coef: np.ndarray  # (n_values, dim)
    intercept: np.ndarray  # (n_values,)
    column: str = ""
    report: dict = field(default_factory=dict)  # cv_accuracy, baseline, n, offered
    input = "embedding"
    source = "learned"

    def score_many(self, x: np.ndarray) -> np.ndarray:
        logits = np.atleast_2d(np.asarray(x, np.float64)) @ self.coef.T + self.intercept
        if logits.shape[1] == 1:  # binary sklearn model: one logit for values[1]
            logits = np.concatenate([np.zeros_like(logits), logits], 1)
        return softmax(logits)

    def score(self, x: np.ndarray) -> dict[str, float]:
        return dict(zip(self.values, map(float, self.score_many(x)[0])))

    def predict(self, x: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The most probable value of each row and its probability."""
        p = self.score_many(x)
        best = p.argmax(1)
        return [self.values[i] for i in best], p[np.arange(len(best)), best]


def categorical_columns(products: dict[str, dict[str, str]], columns: list[str],
                        min_per_class: int = MIN_PER_CLASS) -> dict[str, list[str]]:
    """Columns worth a head -> their values with at least ``min_per_class`` products (2 or more values).

    Rare values are pooled into :data:`OTHER` when together they reach ``min_per_class``; columns whose
    values barely repeat (titles, ids) are left out.
    """
    out = {}
    numeric = set(numeric_columns(products, columns))
    for c in columns:
        vals = column_values(products, c)
        if not vals or c in numeric:
            continue
        uniq, counts = np.unique(vals, return_counts=True)
        keep = [str(u) for u, n in zip(uniq, counts) if n >= min_per_class]
        if counts[counts < min_per_class].sum() >= min_per_class:
            keep.append(OTHER)
        if 2 <= len(keep) <= MAX_CLASSES and len(uniq) <= max(2, 0.75 * len(vals)):
            out[c] = keep
    return out


def _fit_in_steps(model, lr, X, y, max_iter: int, progress: Progress) -> None:
    """``model.fit`` in warm-started steps of :data:`STEP` iterations, reporting the iterations done, until the
    solver converges (a step ends early) or ``max_iter`` is reached."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    lr.set_params(warm_start=True, max_iter=STEP)
    done = 0
    progress(0, max_iter)
    while done < max_iter:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        step = int(np.max(lr.n_iter_))
        done += step
        progress(min(done, max_iter), max_iter)
        if step < STEP:
            break
    progress(max_iter, max_iter)


def train_head(column: str, values: list[str], X: np.ndarray, labels: list[str], groups: list[str],
               *, C: float = 1.0, folds: int = 5, seed: int = 0, standardise: bool = False,
               max_iter: int = 2000, progress: Progress | None = None) -> LinearHead:
    """Fit a logistic regression on rows whose label is one of ``values``; cross-validate by product (``groups``)
    unless ``folds`` < 2, and offer the head only when it beats chance. ``standardise`` scales each feature to
    zero mean and unit variance first (folded into the head's weights). ``progress(iterations, max_iter)`` is
    called as the final fit goes (it then runs in warm-started steps of :data:`STEP` iterations)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    wanted = set(values)
    keep = np.array([lab in wanted for lab in labels])
    X, y = np.asarray(X)[keep], np.array(labels)[keep]
    g = np.array(groups)[keep]
    _, counts = np.unique(y, return_counts=True)
    baseline = float(counts.max() / counts.sum())
    n_splits = int(min(folds, min(len(np.unique(g[y == v])) for v in values))) if folds >= 2 else 0
    model = LogisticRegression(C=C, max_iter=max_iter)
    model = make_pipeline(StandardScaler(), model) if standardise else model
    acc = float("nan")
    if n_splits >= 2:
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        acc = float(cross_val_score(model, X, y, groups=g, cv=cv).mean())
    lr = model[-1] if standardise else model
    if progress is None:
        model.fit(X, y)
    else:
        _fit_in_steps(model, lr, X, y, max_iter, progress)
    coef, intercept = lr.coef_.astype(np.float64), lr.intercept_.astype(np.float64)
    if standardise:  # w.(x - mean)/scale + b == (w/scale).x + (b - (w/scale).mean)
        coef = coef / model[0].scale_
        intercept = intercept - coef @ model[0].mean_
    classes = [str(c) for c in lr.classes_]
    offered = bool(n_splits >= 2 and beats_chance(acc, baseline, len(y)))
    report = {"cv_accuracy": acc, "baseline": baseline, "n": int(len(y)), "folds": n_splits, "offered": offered,
              "C": C, "train_accuracy": float(model.score(X, y))}
    return LinearHead(column, classes, coef.astype(np.float32), intercept.astype(np.float32), column, report)
