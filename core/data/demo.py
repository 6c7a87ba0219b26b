"""The real-photo demo catalog (``python -m core demo``): GroceryStoreDataset's 81 products, resized, with a few of
their **train**-split shop photos, written to ``demo_catalog/`` (``core.config.paths.DEMO_ROOT``):

- ``catalog/catalog.csv`` + ``catalog/images/``: the iconic (catalog) picture of each product, with its title,
  coarse class as ``category`` and the first sentence of its description;
- ``queries-train.csv`` + ``photos/train/``: ``TRAIN_PER_PRODUCT`` shop photos per product, for training only
  (the head in ``head/``, a classifier);
- ``queries-examples.csv`` + ``photos/examples/``: ``EXAMPLES_PER_PRODUCT`` other shop photos per product, the
  app's example queries and the held-out photos the demo is measured on;
- ``LICENSE`` (the dataset's, MIT) and ``README.md`` (credit, layout, how it was made).

Only the dataset's train split is read: its val and test photos measure the project. The selection is seeded and
the JPEG encoding fixed, so the same dataset gives the same bytes on every run. The head is trained by
:mod:`core.data.demo_head`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

#: longest side of every shipped picture, and its JPEG quality
MAX_SIDE = 288
QUALITY = 80
#: shop photos per product: used for training; offered as examples (disjoint from the training ones)
TRAIN_PER_PRODUCT = 4
EXAMPLES_PER_PRODUCT = 2
SEED = 24
QUERY_COLUMNS = ["image", "product_id", "category"]
CATALOG_COLUMNS = ["product_id", "image", "title", "category", "description"]
#: splits of the dataset that are never read (they measure the project)
HELD_BACK = ("val", "validation", "test")


@dataclass
class DemoReport:
    out: Path
    products: int = 0
    train: int = 0
    examples: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.products} products, {self.train} training photos, {self.examples} example photos, "
                f"{self.bytes / 1e6:.1f} MB")


@dataclass(frozen=True)
class Product:
    product_id: str  # the dataset's class name, e.g. Golden-Delicious
    category: str  # its coarse class, readable: "Passion Fruit"
    iconic: Path
    description: str
    photos: tuple[Path, ...]  # its train-split shop photos, in the dataset's order


def grocery_root(path: str | Path) -> Path:
    """The ``dataset/`` folder of a GroceryStoreDataset checkout (one with ``classes.csv`` and ``train.txt``)."""
    path = Path(path).expanduser()
    for cand in (path, path / "dataset", *path.glob("*/dataset")):
        if (cand / "classes.csv").is_file() and (cand / "train.txt").is_file():
            return cand
    raise ValueError(f"{path}: not a GroceryStoreDataset folder (no dataset/classes.csv and train.txt)")


def readable(name: str) -> str:
    return name.replace("-", " ").replace("_", " ").strip()


def first_sentence(text: str, limit: int = 160) -> str:
    """The description's first sentence (whitespace folded), cut at ``limit`` characters on a word."""
    text = " ".join(text.split())
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    s = m.group(1) if m else text
    return s if len(s) <= limit else s[:limit].rsplit(" ", 1)[0] + "…"


def read_products(root: Path) -> tuple[list[Product], list[str]]:
    """The dataset's products with their train-split photos; the val/test lists are not opened."""
    skipped: list[str] = []
    with open(root / "classes.csv", newline="", encoding="utf-8-sig") as f:
        rows = [r for r in list(csv.reader(f))[1:] if len(r) >= 6]
    photos: dict[str, list[Path]] = {}
    for line_no, line in enumerate((root / "train.txt").read_text(encoding="utf-8").splitlines(), 1):
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2 or not parts[0]:
            continue
        rel = Path(parts[0])
        why = "not a train photo" if rel.parts[0] in HELD_BACK else "" if (root / rel).is_file() else "missing"
        if why:
            skipped.append(f"train.txt line {line_no}: {why}")
            continue
        photos.setdefault(parts[1], []).append(root / rel)
    out = []
    for r in rows:
        name, cid, coarse, _, iconic, desc = (c.strip() for c in r[:6])
        src = root / iconic.lstrip("/")
        if not src.is_file() or not photos.get(cid):
            skipped.append(f"{name}: {'iconic image' if not src.is_file() else 'train photos'} missing")
            continue
        dpath = root / desc.lstrip("/")
        text = dpath.read_text(encoding="utf-8", errors="replace") if dpath.is_file() else ""
        out.append(Product(name, readable(coarse), src, first_sentence(text), tuple(photos[cid])))
    return out, skipped


def pick_photos(p: Product, n_train: int, n_examples: int, seed: int = SEED) -> tuple[list[Path], list[Path]]:
    """Seeded, disjoint draws of a product's train-split photos: (for training, as examples). The examples are
    drawn first, so that they stay the same whatever the number of training photos."""
    order = list(p.photos)
    random.Random(f"{seed}:{p.product_id}").shuffle(order)
    return order[n_examples:n_examples + n_train], order[:n_examples]


def jpeg_bytes(src: Path, max_side: int = MAX_SIDE, quality: int = QUALITY) -> bytes:
    """The picture turned upright, in RGB, shrunk to ``max_side`` on its longest side, as a JPEG (same input,
    same bytes)."""
    with Image.open(src) as im:
        img = ImageOps.exif_transpose(im).convert("RGB")
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def write_demo_photos(source: str | Path, out: str | Path, *, n_train: int = TRAIN_PER_PRODUCT,
                      n_examples: int = EXAMPLES_PER_PRODUCT, seed: int = SEED, max_side: int = MAX_SIDE) -> DemoReport:
    """Write the catalog, the training and the example photos with their CSVs under ``out`` (its ``catalog/``,
    ``photos/`` and CSVs are replaced; ``head/`` and ``README.md`` are left alone)."""
    root = grocery_root(source)
    out = Path(out)
    if n_train < 1 or n_examples < 1:
        raise ValueError("the demo needs at least one training and one example photo per product")
    products, skipped = read_products(root)
    if not products:
        raise ValueError(f"{root}: no product with an iconic image and train photos")
    for stale in (out / "catalog", out / "photos"):
        if stale.exists():
            shutil.rmtree(stale)
    rep = DemoReport(out, skipped=skipped)
    catalog, train, examples = [], [], []
    for p in products:
        rel = f"images/{p.product_id}.jpg"
        _put(out / "catalog" / rel, jpeg_bytes(p.iconic, max_side), rep)
        catalog.append({"product_id": p.product_id, "image": rel, "title": readable(p.product_id),
                        "category": p.category, "description": p.description})
        for kind, picked, rows in zip(("train", "examples"), pick_photos(p, n_train, n_examples, seed),
                                      (train, examples)):
            for src in picked:
                rel = f"photos/{kind}/{p.product_id}/{src.name}"
                _put(out / rel, jpeg_bytes(src, max_side), rep)
                rows.append({"image": rel, "product_id": p.product_id, "category": p.category})
    _write_csv(out / "catalog" / "catalog.csv", CATALOG_COLUMNS, catalog)
    _write_csv(out / "queries-train.csv", QUERY_COLUMNS, train)
    _write_csv(out / "queries-examples.csv", QUERY_COLUMNS, examples)
    licence = root.parent / "LICENSE"
    if licence.is_file():
        shutil.copyfile(licence, out / "LICENSE")
    rep.products, rep.train, rep.examples = len(catalog), len(train), len(examples)
    return rep


def _put(path: Path, data: bytes, rep: DemoReport) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    rep.bytes += len(data)


def read_examples(out: str | Path) -> list[dict[str, str]]:
    """The rows of ``queries-examples.csv`` (image, product_id, category), in the order the app offers them."""
    with open(Path(out) / "queries-examples.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_example_order(out: str | Path, first: list[str]) -> None:
    """Rewrite ``queries-examples.csv`` with the images ``first`` (as written in it) at the top, in that order;
    the other rows keep theirs. The app offers the first row first."""
    rows = read_examples(out)
    rank = {img: i for i, img in enumerate(first)}
    rows.sort(key=lambda r: rank.get(r["image"], len(rank)))  # a stable sort
    _write_csv(Path(out) / "queries-examples.csv", QUERY_COLUMNS, rows)


def photos_digest(out: str | Path) -> str:
    """sha256 of what the head is trained on: ``catalog/catalog.csv``, ``queries-train.csv`` and every image they
    name (path and content)."""
    out = Path(out)
    h = hashlib.sha256()
    for csv_path, base in ((out / "catalog" / "catalog.csv", out / "catalog"), (out / "queries-train.csv", out)):
        h.update(csv_path.read_bytes())
        with open(csv_path, newline="", encoding="utf-8") as f:
            for image in sorted(r["image"] for r in csv.DictReader(f)):
                h.update(f"{image}\n".encode())
                h.update(hashlib.sha256((base / image).read_bytes()).digest())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


#: what ``config.json`` of a trained head records that changes from run to run (time), left out of the demo's
VOLATILE = ("created", "seconds")


def seal_head(out: str | Path, flags: list[str]) -> str:
    """Record in ``out/head/config.json`` what produced the head (command, train-metric flags, digest of the
    photos, base embedder) and its weights' sha256, without the run's times; returns that sha256."""
    head = Path(out) / "head"
    cfg = json.loads((head / "config.json").read_text(encoding="utf-8"))
    for k in VOLATILE:
        cfg.pop(k, None)
    weights = file_sha256(head / "model.safetensors")
    cfg["produced_by"] = {"command": "python -m core demo --head-only", "train_metric_flags": list(flags),
                          "base": cfg.get("base"), "photos_sha256": photos_digest(out), "weights_sha256": weights}
    (head / "config.json").write_text(json.dumps(cfg, indent=1) + "\n", encoding="utf-8")
    return weights
