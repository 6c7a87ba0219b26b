"""Scores people can read: each result's score as one stacked bar of its parts (similarity, each attribute
filter), every bar on the same x range, with one legend for all of them."""

from __future__ import annotations

import streamlit as st

from core.index import Hit
from core.search.ranking import SIMILARITY
from ui.messages import md

#: Streamlit's Markdown colour names and the colours its light theme draws them in, for the bars (similarity is
#: always grey), so the legend line and the bars match
PALETTE = [("blue", "#244FB4"), ("orange", "#9B4519"), ("green", "#0C5A44"), ("violet", "#6F33B8"),
           ("red", "#9E303B"), ("yellow", "#956B0F")]
GREY = ("gray", "#686255")


def colours(dims: list[str]) -> dict[str, tuple[str, str]]:
    """Each ranking dimension's (Markdown name, hex) colour; the same on every card."""
    others = [d for d in dims if d != SIMILARITY]
    out = {SIMILARITY: GREY}
    out.update({d: PALETTE[i % len(PALETTE)] for i, d in enumerate(others)})
    return out


def legend(dims: list[str]) -> str:
    """One Markdown line naming each bar colour (dimension names escaped)."""
    c = colours(dims)
    return "Score bars, one scale for all cards: " + " ".join(
        f":{c[d][0]}[■ {md(d.replace('_', ' '))}]" for d in dims)


def bar_spec(hit: Hit, dims: list[str], x_range: tuple[float, float]) -> dict:
    """Vega-Lite spec of one hit's stacked score bar on the shared ``x_range``. Its few values sit in the spec's
    one layer, where Streamlit leaves them (top-level data it turns into a DataFrame and Arrow on every rerun,
    a fifth of a rerun's work for ten cards)."""
    c = colours(dims)
    parts = [{"part": d.replace("_", " "), "value": round(float(hit.contributions.get(d, 0.0)), 4), "order": i}
             for i, d in enumerate(dims) if d in hit.contributions]
    return {"height": 26, "config": {"view": {"stroke": None}}, "layer": [{
        "data": {"values": parts},
        "mark": {"type": "bar", "tooltip": True, "size": 14},
        "encoding": {
            "x": {"field": "value", "type": "quantitative", "stack": "zero", "title": None,
                  "scale": {"domain": [round(x_range[0], 4), round(x_range[1], 4)], "nice": False},
                  "axis": {"tickCount": 3, "labelFontSize": 9, "grid": False}},
            "color": {"field": "part", "type": "nominal", "legend": None,
                      "scale": {"domain": [d.replace("_", " ") for d in dims], "range": [c[d][1] for d in dims]}},
            "order": {"field": "order", "type": "quantitative"},
            "tooltip": [{"field": "part", "type": "nominal"}, {"field": "value", "type": "quantitative",
                                                                "format": ".3f"}],
        },
    }]}


def score_bar(hit: Hit, dims: list[str], x_range: tuple[float, float], key: str) -> None:
    """The hit's score and its stacked bar (on the shared range)."""
    st.vega_lite_chart(bar_spec(hit, dims, x_range), key=key, height=50)
