"""The one search entry point: a :class:`~core.embedding.query.Query` and :class:`SearchOptions` in, a
:class:`SearchResult` out, for the CLI, the app, evaluation and the benchmark alike.

``rank="static"`` (the default) scores each candidate by ``similarity + sum of weight x agreement`` over the
offered attribute filters (pixel colour, and learned heads for catalog columns that beat their majority
baseline; see docs/ranking.md), with the weights fitted on the catalog's known queries (plain distance where
the filters do not help; :mod:`core.search.tuning`), or the weights given. ``rank="dynamic"`` takes the
weights per query from the trained :class:`~core.search.dynamic_ranker.WeightNet` (``rank-train``).
``rank="distance"`` is plain nearest-neighbour search. Each hit carries the score it is ranked by, its visual
similarity and the weight x score per dimension that sum to that score. A photo whose closeness to the catalog
(its best similarity to the catalog's pictures and known shopper photos) is below the index's calibrated
threshold (:mod:`core.search.calibration`) says ``no_close_match``. Options are
arguments: nothing shared between requests is changed by one.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from core.config.defaults import DEFAULT_RANK, RANKS
from core.config.progress import Progress, Stages
from core.embedding import Embedder
from core.embedding.query import Query
from core.index import Hit, IndexBackend
from core.search.calibration import Calibration, calibration_for
from core.search.ranking import (
    SIMILARITY,
    Ranker,
    RankingError,
    default_weights,
    weight_vector,
)
from core.search.tuning import tuned_attributes

if TYPE_CHECKING:
    from core.search.dynamic_ranker import WeightNet


@dataclass(frozen=True)
class SearchOptions:
    """What one request asks for: ``k`` products, ``where`` filters, a minimum similarity, the ranking and
    (static ranking) weights by dimension; dimensions not named keep their default weight."""

    k: int = 10
    where: tuple[str, ...] = ()
    min_similarity: float | None = None
    rank: str = DEFAULT_RANK
    weights: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self):
        if self.rank not in RANKS:
            raise RankingError(f"unknown ranking {self.rank!r}; use one of {', '.join(RANKS)}")
        if self.k < 1:
            raise ValueError("k must be at least 1")
        if self.weights is not None and self.rank != "static":
            raise RankingError("weights apply to static ranking only")

    def as_distance(self) -> SearchOptions:
        """The same request ranked by distance (same k, filters and minimum similarity)."""
        return replace(self, rank="distance", weights=None)

    @classmethod
    def make(cls, *, k: int = 10, where=None, min_similarity: float | None = None, rank: str = DEFAULT_RANK,
             weights: dict[str, float] | None = None) -> SearchOptions:
        """From plain values (a list or string of filters, a dict of weights); 0 similarity means no minimum."""
        where = (where,) if isinstance(where, str) else tuple(where or ())
        return cls(k, where, min_similarity or None, rank,
                   tuple(sorted(weights.items())) if weights is not None else None)


@dataclass
class SearchResult:
    hits: list[Hit]
    rank: str
    weights: dict[str, float]  # the weight of each ranking dimension used for this query
    query_attributes: dict[str, dict[str, float]] = field(default_factory=dict)  # predicted, per attribute
    seconds: float = 0.0
    threshold: float | None = None  # the index's calibrated "close match" closeness (None: not calibrated)
    closeness: float | None = None  # the photo's closeness to the catalog (see core.search.calibration)
    no_close_match: bool = False  # ``closeness`` is below ``threshold``: nothing in the catalog is close
    #: ranked by distance for now: the requested ranking's attribute filters are still being prepared
    preparing: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


#: the preparation's stages, in a person's words
COLOURS, QUERIES, OTHERS = ("reading each catalog picture's colours", "searching the catalog's labelled photos",
                            "looking at pictures of other things")


class Searcher:
    """An index with its embedder, and (built on first need, then shared read-only) the attribute ranker and
    the dynamic-weight model. Safe to share between threads and app sessions."""

    def __init__(self, index: IndexBackend, embedder: Embedder, *, progress: Progress | bool = False):
        index.check_embedder(embedder)
        self.index, self.embedder, self.progress = index, embedder, progress
        self._ranker: Ranker | None = None
        self._net: WeightNet | None = None
        self._calibration: Calibration | None | bool = None
        self._lock = threading.Lock()
        self._preparing: threading.Thread | None = None
        self._prepare_lock = threading.Lock()  # not ``_lock``: the preparation holds that one while it builds
        #: the counts of the preparation (a page draws them: it runs in a thread of its own)
        self.preparation = Stages()

    def _stage(self, what: str) -> Progress | bool:
        """A stage's progress: tqdm bars where the searcher was given ``True`` (the CLI); a callback given counts
        the pictures' colours (as it always has); everything else is counted in :attr:`preparation`."""
        if self.progress is True or (callable(self.progress) and what == COLOURS):
            return self.progress
        return self.preparation.of(what)

    @property
    def ready(self) -> bool:
        """Whether the ranker and the "no close match" calibration are built (a search then never waits)."""
        return self._ranker is not None and self._calibration is not None

    @property
    def ranker(self) -> Ranker:
        """The attribute ranker over the index's cached attribute artefact (built, with progress, if missing)."""
        with self._lock:
            if self._ranker is None:
                self._ranker = Ranker(self.index, tuned_attributes(
                    self.index, self.embedder, progress=self._stage(COLOURS), queries_progress=self._stage(QUERIES)))
            return self._ranker

    def prepare_in_background(self) -> threading.Thread:
        """Build the ranker (attribute artefact, fitted weights) and the calibration in a daemon thread, e.g. as
        soon as the index is loaded, while the user picks a photo; started once per searcher. A search
        meanwhile waits for them, or (``wait=False``) is ranked by distance and says so."""
        with self._prepare_lock:
            if self._preparing is None:
                self._preparing = threading.Thread(target=lambda: (self.ranker, self.calibration), daemon=True,
                                                   name=f"prepare-{self.index.root.name}")
                self._preparing.start()
            return self._preparing

    @property
    def weights_info(self) -> dict:
        """How the default static weights were chosen: ``weights``, ``chosen`` (fitted | distance), ``source``
        (the queries), ``cv`` (cross-validated mrr@10 of distance, the 0.25 default and the fit)."""
        dims = self.ranker.dims
        info = self.ranker.attributes.meta.get("static_weights") or {
            "weights": default_weights(dims), "chosen": "default", "source": "", "cv": {}}
        return info | {"weights": {d: float(info["weights"].get(d, 0.0)) for d in dims}}

    @property
    def default_weights(self) -> dict[str, float]:
        """The static weights of a request that names none (fitted on the catalog's known queries)."""
        return self.weights_info["weights"]

    @property
    def calibration(self) -> Calibration | None:
        """The index's "no close match" calibration (cached; None when it cannot be calibrated)."""
        with self._lock:
            if self._calibration is None:
                try:
                    self._calibration = calibration_for(self.index, self.embedder, progress=self._stage(QUERIES),
                                                        negatives_progress=self._stage(OTHERS))
                except ValueError:
                    self._calibration = False
            return self._calibration or None

    @property
    def net(self) -> WeightNet:
        """The trained dynamic-weight model; a clear error when none (or a stale one) exists."""
        from core.search.dynamic_ranker import load_model, model_dir, model_key

        ranker = self.ranker
        with self._lock:
            if self._net is None:
                self._net = load_model(model_dir(self.index), model_key(ranker, self.embedder))[0]
            return self._net

    @property
    def dims(self) -> list[str]:
        return self.ranker.dims

    def weights_for(self, options: SearchOptions) -> dict[str, float]:
        """Static weights of a request: the defaults, overridden by the weights it names."""
        dims = self.ranker.dims
        given = dict(options.weights or ())
        unknown = sorted(set(given) - set(dims))
        if unknown:
            raise RankingError(f"unknown dimension {unknown[0]!r}; available: {', '.join(dims)}")
        return self.default_weights | given

    def search(self, query: Query, options: SearchOptions = SearchOptions(), *, wait: bool = True) -> SearchResult:
        """Top ``options.k`` products for ``query``, best first, flagged when none is a close match. With
        ``wait=False`` a search that would wait for the ranker or the calibration (a catalog's first search) is
        ranked by distance now, without the close-match check, with ``preparing`` set; their preparation goes on
        in the background."""
        t0 = time.perf_counter()
        if not wait and not self.ready:
            self.prepare_in_background()
            res = self._search(query, options.as_distance())
            res.preparing, res.seconds = True, time.perf_counter() - t0
            return res
        res = self._search(query, options)
        cal = self.calibration
        if cal is not None and not (query.text and query.image is None):  # calibrated on photos, not on texts
            res.threshold = cal.threshold
            res.closeness = round(cal.closeness(query.vector, max((h.similarity for h in res.hits), default=-1.0)), 6)
            res.no_close_match = res.closeness < cal.threshold
        res.seconds = time.perf_counter() - t0
        return res

    def _search(self, query: Query, options: SearchOptions) -> SearchResult:
        t0 = time.perf_counter()
        if options.rank == "distance":
            hits = self.index.search(query.vector, options.k, list(options.where) or None,
                                     min_score=options.min_similarity)[0]
            hits = [Hit(h.product_id, h.score, h.rank, h.image, h.fields, h.similarity, {SIMILARITY: h.score})
                    for h in hits]
            return SearchResult(hits, "distance", {SIMILARITY: 1.0}, {}, time.perf_counter() - t0)
        ranker = self.ranker
        if len(ranker.dims) == 1:  # no attribute filter is offered for this catalog: ranking is distance
            return self._search(query, options.as_distance())
        cand = ranker.candidates(query.vector, query.image, list(options.where) or None,
                                 n_ann=max(ranker.n_ann, 3 * options.k))
        if options.rank == "dynamic":
            from core.search.dynamic_ranker import dynamic_weights

            w = dynamic_weights(self.net, query.vector, cand.query_attributes, ranker.dims)
        else:
            w = weight_vector(self.weights_for(options), ranker.dims)
        hits = []
        # every candidate is ranked; hits are built for the first k (or all, when a minimum similarity may drop some)
        upto = len(cand.products) if options.min_similarity is not None else options.k
        for h in ranker.rank(cand, w, upto):
            sim = h.scores[SIMILARITY]
            if options.min_similarity is not None and sim < options.min_similarity:
                continue
            hits.append(Hit(h.product_id, round(h.score, 6), len(hits) + 1, h.image, h.fields, round(sim, 6),
                            {d: round(c, 6) for d, c in h.contributions.items()}))
            if len(hits) == options.k:
                break
        return SearchResult(hits, options.rank, dict(zip(ranker.dims, map(float, w))), cand.query_attributes,
                            time.perf_counter() - t0)
