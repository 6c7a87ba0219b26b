"""What each catalog column is for, inferred from the data and overridable per catalog.

Kinds: ``title``, ``price`` and ``category`` (the card's display fields), ``text`` (long text, shown behind an
expander), ``id`` (codes: never a filter), ``categorical`` and ``numeric`` (filters, also shown on cards),
``info`` (short text shown on cards, too varied to filter by) and ``hidden`` (empty or one value for all).
An optional ``columns.json`` beside ``catalog.csv`` (``{"class_id": "id", "notes": "text"}``) overrides the
inference column by column.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.data.catalog import column_values, is_number, load_catalog

KINDS = ("title", "price", "category", "text", "id", "categorical", "numeric", "info", "hidden")
FILTERABLE = ("category", "categorical", "price", "numeric")
OVERRIDES = "columns.json"
#: a text column with more distinct values than this is not offered as a filter
MAX_CHOICES = 60
#: text this long (mean characters) is shown behind an expander
LONG_TEXT = 60
_TITLE = ("title", "name", "product_name", "product", "label")
_PRICE = ("price", "cost", "amount", "price_eur", "price_usd")
_CATEGORY = ("category", "type", "department", "class", "group", "section")
_ID = re.compile(r"(^|[_ -])(id|code|sku|ean|upc|gtin|number|no)$", re.IGNORECASE)


class ColumnsError(ValueError):
    """A ``columns.json`` that cannot be used."""


@dataclass
class Card:
    """A product's fields arranged for display."""

    title: str
    price: str = ""
    category: str = ""
    details: list[tuple[str, str]] = field(default_factory=list)  # short fields shown on the card
    long_text: list[tuple[str, str]] = field(default_factory=list)  # shown behind an expander


@dataclass
class ColumnTypes:
    kinds: dict[str, str]  # column -> kind, in catalog column order
    source: dict[str, str] = field(default_factory=dict)  # column -> "inferred" | "columns.json"

    def of(self, *kinds: str) -> list[str]:
        return [c for c, k in self.kinds.items() if k in kinds]

    def first(self, kind: str) -> str | None:
        return next(iter(self.of(kind)), None)

    @property
    def filterable(self) -> list[str]:
        """Columns offered as filters (categorical facets and numeric ranges)."""
        return self.of(*FILTERABLE)

    def card(self, fields: dict[str, str], product_id: str = "") -> Card:
        """The display form of one product's ``fields``: title, price, category, short details, long text."""
        title_col, price_col, cat_col = self.first("title"), self.first("price"), self.first("category")
        details = [(c, fields[c]) for c in self.of("categorical", "numeric", "info", "category", "price")
                   if fields.get(c) and c not in (price_col, cat_col)]
        return Card(title=(fields.get(title_col, "") if title_col else "") or product_id,
                    price=fields.get(price_col, "") if price_col else "",
                    category=fields.get(cat_col, "") if cat_col else "",
                    details=details, long_text=[(c, fields[c]) for c in self.of("text") if fields.get(c)])


def _is_int(v: str) -> bool:
    try:
        return float(v) == int(float(v)) and "." not in v
    except (ValueError, OverflowError):
        return False


def infer_kind(name: str, values: list[str]) -> str:
    """The kind of one column from its non-empty values (one per product) and its name."""
    vals = [v for v in values if v != ""]
    if not vals:
        return "hidden"
    distinct, n = len(set(vals)), len(vals)
    if distinct == 1 and n > 1:
        return "hidden"
    low = name.strip().lower()
    if all(is_number(v) for v in vals):
        codes = all(_is_int(v) for v in vals)
        if codes and (_ID.search(low) or (distinct == n and n >= 20)):
            return "id"
        return "price" if low in _PRICE else "numeric"
    if sum(map(len, vals)) / n >= LONG_TEXT:
        return "text"
    if low in _TITLE:
        return "title"
    if _ID.search(low) or (distinct == n and n >= 20 and not any(" " in v for v in vals)):
        return "id"
    if distinct <= MAX_CHOICES and distinct < n and "," not in "".join(set(vals)):
        return "category" if low in _CATEGORY else "categorical"
    return "info"


def column_types(products: dict[str, dict[str, str]], columns: list[str] | None = None,
                 overrides: dict[str, str] | None = None) -> ColumnTypes:
    """Kinds of ``columns`` (default: every column of ``products``, product_id -> fields), then ``overrides``.

    Only the first inferred ``title``, ``price`` and ``category`` keep that role; later ones become
    ``info``, ``numeric`` and ``categorical``.
    """
    if columns is None:
        columns = list(dict.fromkeys(c for f in products.values() for c in f))
    kinds, source = {}, {}
    demote = {"title": "info", "price": "numeric", "category": "categorical"}
    for c in columns:
        k = infer_kind(c, column_values(products, c))
        if k in demote and k in kinds.values():
            k = demote[k]
        kinds[c], source[c] = k, "inferred"
    if "title" not in kinds.values() and "info" in kinds.values():  # the first varied short text names a product
        kinds[next(c for c, k in kinds.items() if k == "info")] = "title"
    for c, k in (overrides or {}).items():
        if c in kinds:
            if k == "title":  # one title: the overridden one
                kinds.update({o: "info" for o, ok in kinds.items() if ok == "title"})
            kinds[c], source[c] = k, OVERRIDES
    return ColumnTypes(kinds, source)


def read_overrides(catalog_root: str | Path) -> dict[str, str]:
    """``columns.json`` of a catalog folder (column -> kind), or {} when there is none."""
    p = Path(catalog_root) / OVERRIDES
    if not p.is_file():
        return {}
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ColumnsError(f"{p}: not readable JSON ({e})") from None
    if not isinstance(raw, dict):
        raise ColumnsError(f"{p}: expected an object of column -> kind")
    bad = {c: k for c, k in raw.items() if k not in KINDS}
    if bad:
        c, k = next(iter(bad.items()))
        raise ColumnsError(f"{p}: column {c!r} has unknown kind {k!r}; use one of {', '.join(KINDS)}")
    return {str(c): str(k) for c, k in raw.items()}


def catalog_column_types(catalog_root: str | Path, products: dict[str, dict[str, str]] | None = None,
                         columns: list[str] | None = None) -> ColumnTypes:
    """Column kinds of a catalog folder: inferred from ``products`` (default: the catalog's), then its
    ``columns.json``."""
    if products is None:
        cat = load_catalog(catalog_root)
        products, columns = cat.products, columns or cat.columns
    return column_types(products, columns, read_overrides(catalog_root))
