"""Several products in one photo: find them, search each.

One backbone pass (EfficientNet-Lite0, :meth:`~core.embedding.efficientnet.EfficientNetLiteEmbedder.photo_maps`)
gives the stride-16 stage-5 map and the stride-32 final map of the whole photo. A linear *productness head* on
those maps (see :mod:`core.search.region_head`) predicts per 16-pixel cell whether a product is there and how
central the cell is in it. Products are the foreground grown by a watershed from the centre peaks, so touching
products separate where the centre map dips between them; a peak that rises only a little above the saddle to
its neighbour is merged into it. Each box is searched through the one :class:`~core.search.engine.Searcher`,
its crop letterboxed (padded square) so wide products keep their ends. Where the watershed cut one product in
two (a long shoe, a lamp's shade and foot), the vectors settle it: neighbouring boxes are merged when the crop of
both matches the catalog clearly better than either part.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from core.data.images import ImageSource, open_image
from core.embedding import Embedder, load_embedder
from core.embedding.decode import Crop
from core.embedding.efficientnet import EfficientNetLiteEmbedder
from core.embedding.query import Query, embed_queries
from core.index import Hit
from core.search.engine import Searcher, SearchOptions
from core.search.region_head import ProductnessHead, productness_head, upsample

Box = tuple[int, int, int, int]  # pixels: left, top, right (exclusive), bottom (exclusive)
BACKBONE_SPEC = "efficientnet-lite0"  # reads the photo when the search embedder is not an EfficientNet-Lite


@dataclass(frozen=True)
class RegionParams:
    """How boxes are read off the head's maps (chosen on the dev scenes, see docs/regions.md)."""

    side: int = 640  # the photo's longer side for the backbone pass
    foreground: float = 0.3  # a cell is product where the foreground map exceeds this
    edge: float = 0.35  # a box ends where the (upsampled) foreground map falls below this
    centre: float = 0.2  # a centre peak must exceed this to seed a product
    dynamics: float = 0.05  # peaks within this of the saddle to a neighbour are merged into it
    min_cells: int = 8  # smaller regions (price tags, specks) are dropped
    max_regions: int = 12
    #: neighbouring boxes become one when the crop of both is closer to its nearest catalog image than either
    #: part's by more than this (cosine); None: never merge
    merge_gain: float | None = 0.1
    merge_gap: float = 0.02  # neighbours: boxes closer than this share of the photo's longer side


@dataclass
class Region:
    box: Box
    score: float  # mean foreground probability inside the region
    hits: list[Hit] = field(default_factory=list)
    query: Query | None = None
    no_close_match: bool = False  # the box's best hit is below the catalog's calibrated threshold (a tag, a stray)

    def crop(self, size: tuple[int, int]) -> Crop:
        return Crop.from_box(self.box, size)

    def to_dict(self) -> dict:
        return {"box": list(self.box), "score": round(self.score, 4), "no_close_match": self.no_close_match,
                "hits": [h.to_dict() for h in self.hits]}


@dataclass
class RegionSearch:
    size: tuple[int, int]  # of the photo
    regions: list[Region]
    seconds: dict[str, float]  # by stage (decode, boxes, embed, search) and in total

    def to_dict(self) -> dict:
        return {"size": list(self.size), "regions": [r.to_dict() for r in self.regions],
                "seconds": {k: round(v, 4) for k, v in self.seconds.items()}}


# ---------------------------------------------------------------- boxes from the maps
def _flood(height: np.ndarray, seeds: np.ndarray, mask: np.ndarray, dynamics: float) -> np.ndarray:
    """Watershed of ``height`` (descending) from labelled ``seeds`` inside ``mask``; where two floods meet at a
    saddle less than ``dynamics`` below the lower of their peaks, they become one region."""
    lab = np.where(mask, seeds, 0).astype(np.int32)
    parent = list(range(int(lab.max()) + 1))
    peak = [0.0] * len(parent)
    heap: list = []
    for n, (y, x) in enumerate(zip(*np.nonzero(lab))):
        peak[lab[y, x]] = max(peak[lab[y, x]], float(height[y, x]))
        heap.append((-float(height[y, x]), n, y, x))
    heapq.heapify(heap)

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    n, (h, w) = len(heap), height.shape
    while heap:
        level, _, y, x = heapq.heappop(heap)
        a = root(lab[y, x])
        for yy, xx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
            if not (0 <= yy < h and 0 <= xx < w and mask[yy, xx]):
                continue
            if lab[yy, xx] == 0:
                lab[yy, xx] = a
                heapq.heappush(heap, (max(level, -float(height[yy, xx])), n, yy, xx))
                n += 1
            else:
                b = root(lab[yy, xx])
                if b != a and min(peak[a], peak[b]) + level < dynamics:  # saddle = -level
                    parent[b] = a
                    peak[a] = max(peak[a], peak[b])
    return np.vectorize(root, otypes=[np.int32])(lab) * (lab > 0)


def boxes_from_maps(fg: np.ndarray, centre: np.ndarray, size: tuple[int, int],
                    p: RegionParams = RegionParams()) -> list[tuple[Box, float]]:
    """Product boxes (in pixels of an image of ``size``) and scores from the head's foreground and centre maps."""
    mask = fg > p.foreground
    smooth = ndimage.gaussian_filter(centre, 0.7)
    peaks = (smooth == ndimage.maximum_filter(smooth, size=3)) & mask & (smooth > p.centre)
    comp, n_comp = ndimage.label(mask)
    seeded = set(np.unique(comp[peaks]))
    for c in range(1, n_comp + 1):  # a blob without a strong centre still gets one seed: its highest cell
        if c not in seeded:
            cells = np.argwhere(comp == c)
            peaks[tuple(cells[np.argmax(smooth[comp == c])])] = True
    seeds, _ = ndimage.label(peaks, structure=np.ones((3, 3)))
    lab = _flood(smooth, seeds, mask, p.dynamics)
    w, h = size
    fine = upsample(fg[None], (h, w))[0] > p.edge
    owner = np.asarray(Image.fromarray(lab.astype(np.int32)).resize((w, h), Image.NEAREST))
    owner = ndimage.grey_dilation(owner, size=(h // lab.shape[0] + 1, w // lab.shape[1] + 1))
    out = []
    for k in np.unique(lab[lab > 0]):
        region = lab == k
        if region.sum() < p.min_cells:
            continue
        ys, xs = np.nonzero(fine & (owner == k))
        if len(xs) == 0:
            continue
        out.append(((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), float(fg[region].mean())))
    out.sort(key=lambda bs: -bs[1])
    return out[: p.max_regions]


# ---------------------------------------------------------------- the backbone
def maps_embedder(embedder: Embedder) -> EfficientNetLiteEmbedder:
    """The EfficientNet-Lite that reads the photo: the search embedder itself (or the base of its trained head)
    when it is one, else the default EfficientNet-Lite0."""
    for e in (embedder, getattr(embedder, "base", None)):
        if isinstance(e, EfficientNetLiteEmbedder):
            return e
    return load_embedder(BACKBONE_SPEC)


def propose(head: ProductnessHead, backbone: EfficientNetLiteEmbedder, img: Image.Image,
            p: RegionParams = RegionParams()) -> list[tuple[Box, float]]:
    """Product boxes in ``img`` (best first) with their scores."""
    s5, fin = backbone.photo_maps(img, p.side)
    fg, centre = head.predict(s5, fin)
    return boxes_from_maps(fg, centre, img.size, p)


class RegionSearcher:
    """A :class:`Searcher` that also finds the products in a photo: boxes, then one search per box. The
    productness head is trained for the index on first use (cached; see :mod:`core.search.region_head`)."""

    def __init__(self, searcher: Searcher, params: RegionParams = RegionParams(), *, progress: bool = False):
        self.searcher, self.params = searcher, params
        self.backbone = maps_embedder(searcher.embedder)
        self.head = productness_head(searcher.index, self.backbone, progress=progress)

    def search(self, source: ImageSource, options: SearchOptions = SearchOptions(),
               boxes: list[tuple[Box, float]] | None = None) -> RegionSearch:
        """Boxes of ``source`` (found, or the ``boxes`` given) and the top products of each."""
        t0 = time.perf_counter()
        img = open_image(source)
        t1 = time.perf_counter()
        given = boxes is not None
        if boxes is None:
            boxes = propose(self.head, self.backbone, img, self.params)
        t2 = time.perf_counter()
        regions = [Region(b, s, [], q) for (b, s), q in zip(boxes, self._queries(img, [b for b, _ in boxes])) if q]
        if not given and self.params.merge_gain is not None:
            regions = sorted(self._merge(img, regions), key=lambda r: -r.score)
        t3 = time.perf_counter()
        for r in regions:
            res = self.searcher.search(r.query, options)
            r.hits, r.no_close_match = res.hits, bool(res.no_close_match)
        t4 = time.perf_counter()
        return RegionSearch(img.size, regions, {"decode": t1 - t0, "boxes": t2 - t1, "embed": t3 - t2,
                                                "search": t4 - t3, "total": t4 - t0})

    def _queries(self, img: Image.Image, boxes: list[Box]) -> list[Query | None]:
        """The letterboxed crop of each box as a query (one batch)."""
        crops = [Crop.from_box(b, img.size) for b in boxes]
        return embed_queries(self.searcher.embedder, [img] * len(boxes), crops=crops, letterboxed=True)[0]

    def _nearest(self, queries: list[Query]) -> list[float]:
        """Cosine similarity of each query's nearest catalog image."""
        if not queries:
            return []
        found = self.searcher.index.search(np.stack([q.vector for q in queries]), 1)
        return [hits[0].score if hits else -1.0 for hits in found]

    def _merge(self, img: Image.Image, regions: list[Region]) -> list[Region]:
        """Neighbouring regions whose joint crop matches the catalog better (by ``merge_gain``) become one."""
        gap = self.params.merge_gap * max(img.size)
        pairs = [(i, j) for i in range(len(regions)) for j in range(i + 1, len(regions))
                 if _near(regions[i].box, regions[j].box, gap)]
        if not pairs:
            return regions
        unions = [_union(regions[i].box, regions[j].box) for i, j in pairs]
        joint = self._queries(img, unions)
        alone = self._nearest([r.query for r in regions])
        both = self._nearest([q for q in joint if q])
        it = iter(both)
        gains = [(next(it) - max(alone[i], alone[j]), n) for n, (i, j) in enumerate(pairs) if joint[n]]
        used, merged = set(), []
        for g, n in sorted(gains, reverse=True):
            i, j = pairs[n]
            if g > self.params.merge_gain and not {i, j} & used:
                used |= {i, j}
                merged.append(Region(unions[n], max(regions[i].score, regions[j].score), [], joint[n]))
        return [r for n, r in enumerate(regions) if n not in used] + merged


def _near(a: Box, b: Box, gap: float) -> bool:
    return a[0] <= b[2] + gap and b[0] <= a[2] + gap and a[1] <= b[3] + gap and b[1] <= a[3] + gap


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


# ---------------------------------------------------------------- for the page
def draw_regions(img: Image.Image, boxes: list[Box], size: int = 800, selected: int | None = None) -> Image.Image:
    """A preview no larger than ``size`` with each box outlined and numbered from 1 (``selected``, 0-based,
    drawn in another colour)."""
    prev = img.convert("RGB").copy()
    prev.thumbnail((size, size))
    s = prev.width / img.width
    d = ImageDraw.Draw(prev)
    font = ImageFont.load_default(size=max(12, prev.width // 40))
    for i, b in enumerate(boxes):
        colour = (255, 200, 0) if i == selected else (255, 48, 48)
        x0, y0, x1, y1 = (round(v * s) for v in b)
        d.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=3)
        label = str(i + 1)
        tb = d.textbbox((x0, y0), label, font=font)
        d.rectangle((x0, y0, tb[2] + 6, tb[3] + 4), fill=colour)
        d.text((x0 + 3, y0 + 1), label, fill=(0, 0, 0), font=font)
    return prev


def region_at(boxes: list[Box], point: tuple[float, float]) -> int | None:
    """The number (0-based) of the smallest box that holds ``point`` (pixels of the photo), if any: a click."""
    inside = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    hit = [i for i, b in enumerate(boxes) if b[0] <= point[0] < b[2] and b[1] <= point[1] < b[3]]
    return min(hit, key=inside.__getitem__) if hit else None


__all__ = ["Box", "Region", "RegionParams", "RegionSearch", "RegionSearcher", "boxes_from_maps", "draw_regions",
           "maps_embedder", "propose", "region_at"]
