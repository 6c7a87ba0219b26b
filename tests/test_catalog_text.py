"""Catalog text as text, everywhere (``core/data/text.py``): generated hostile strings (links, e-mail addresses,
emoji and icon shortcodes, colour directives, Markdown and HTML, bidirectional controls, line breaks, control
characters, right-to-left letters) go through every helper that shows catalog text and every place built on
them: cards and captions (Markdown), table cells, the map's hover, legend and side panel, and chart labels. What
comes out forms no link, shortcode or markup, reorders nothing, and reads back as what was typed."""

from __future__ import annotations

import html
import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from core.data.text import BIDI_CONTROLS, FSI, PDI, WJ, html_text, markdown, plain
from core.explore.map_view import hover_text, map_figure
from ui.hover_map import map_data
from ui.messages import md

FRAGMENTS = [
    "https://evil.example/a?b=c", "HTTP://x.y", "http://", "www.example.com", "WwW.x.org", "mail@host.example",
    "x+y@a-b.co.uk", ":smile:", ":+1:", ":material/home:", ":material_home:", ":red[alert]", ":streamlit:", ":",
    "\u202e", "\u202d", "\u202a", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u061c",
    "**bold**", "_it_", "[a](http://b)", "![i](x)", "<img src=x onerror=alert(1)>", "<script>", "</b>", "$x^2$",
    "$$", "`code`", "```", "# h", "- ", "+ ", "1. ", "2) ", "> q", "|a|b|", "~~s~~", "&amp;", "&#x41;", "&lt;",
    "\\", "\\:", "\n", "\r\n", "\t", "\x00", "\x1b[31m", "\x7f", "\u2028", "\x85", "مرحبا", "שלום", "gpj.exe",
    " ", "@", ".", "www", "mailto:a@b.c",
]
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=10).map("".join)

EMOJI = re.compile(r":[\w+-][\w+-]*:")  # what makes Streamlit load its emoji plugin (and what the plugin replaces)
LINK = re.compile(r"(?i)https?://|www\.|[-.\w+]+@[-\w]+(?:\.[-\w]+)+")
SPECIAL = set("\\`*_[]{}<>#|~$!&")


def no_hidden_effects(text: str) -> None:
    """No bidirectional control but a matched isolate around the whole; no line break; no control character."""
    inner = text[1:-1] if text.startswith(FSI) and text.endswith(PDI) else text
    assert not set(inner) & set(BIDI_CONTROLS), repr(text)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", text), repr(text)


def inert_markdown(src: str) -> None:
    """What Streamlit's Markdown would turn into something else: an emoji or icon shortcode, a link (it finds
    those in the text once the escapes are undone), or a Markdown character not escaped."""
    text = re.sub(r"\\(.)", r"\1", src)
    assert ":material/" not in src, repr(src)
    assert not EMOJI.search(text) and ":material_" not in text and not LINK.search(text), repr(src)
    i = 0
    while i < len(src):
        if src[i] == "\\":
            i += 2
            continue
        assert src[i] not in SPECIAL, (src, i)
        i += 1
    assert not re.match(r"\s*([-+]|\d+[.)])(\s|$)", src), repr(src)  # no list item
    no_hidden_effects(src)


def read_back(src: str) -> str:
    """What a reader sees of Markdown text made by :func:`markdown`: escapes undone, word joiners invisible."""
    return re.sub(r"\\(.)", r"\1", src).replace(WJ, "")


@settings(max_examples=400, deadline=None)
@given(hostile)
def test_markdown_is_inert_and_reads_as_typed(s):
    out = markdown(s)
    assert md(s) == out  # the app's helper is this one
    inert_markdown(out)
    assert read_back(out) == plain(s)


@settings(max_examples=300, deadline=None)
@given(hostile)
def test_plain_and_html_text_show_what_was_typed(s):
    p = plain(s)
    no_hidden_effects(p)
    assert plain(p) == p  # once is enough
    assert p.replace(FSI, "").replace(PDI, "") == re.sub(
        f"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f{BIDI_CONTROLS}]", "", re.sub(r"[\t\n\r\v\f\x85\u2028\u2029]", " ", s))
    h = html_text(s)
    assert "<" not in h and ">" not in h and html.unescape(h) == p


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(hostile, hostile, hostile), min_size=1, max_size=4))
def test_the_map_hover_legend_and_side_panel_show_text(cells):
    """The embedding map (plotly figure and the hover component): every catalog string in it is plain (side panel,
    set with textContent) or HTML-escaped (plotly's hover, legend and title)."""
    rows = [{"x": float(i), "y": 0.0, "product_id": pid or f"p{i}", "title": title, "category": cat,
             "image": f"images/{i}.jpg"} for i, (pid, title, cat) in enumerate(cells)]
    data = map_data(rows, "category", {})
    for point, row in zip(data["points"], rows):
        for key in ("product_id", "title", "category"):
            assert point[key] == plain(row[key])
        for part in point["hover"].split("<br>"):
            assert "<" not in part and ">" not in part
            no_hidden_effects(html.unescape(part))
    for g in data["groups"]:
        assert "<" not in g["name"] and ">" not in g["name"]
        no_hidden_effects(html.unescape(g["name"]))
    fig = json.loads(map_figure(rows, "category", title=cells[0][1]).to_json())
    for trace in fig["data"]:
        for label in [trace.get("name") or "", *(trace.get("text") or []), *(trace.get("hovertext") or [])]:
            assert "<" not in label.replace("<br>", "") and ">" not in label.replace("<br>", "")
    assert all(hover_text(r).count("<br>") <= 2 for r in rows)


@settings(max_examples=200, deadline=None)
@given(hostile)
def test_long_text_keeps_its_lines_and_nothing_else(s):
    out = plain(s, lines=True)
    for line in out.split("\n"):
        assert line == plain(line)
        no_hidden_effects(line)
