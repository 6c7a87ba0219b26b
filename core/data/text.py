"""Catalog text (titles, categories, ids, file names: anything a catalog or a visitor supplies) made safe to show:
as plain text, for Markdown and for HTML labels (plotly). What a reader sees is what was typed: never a link,
an emoji, an icon, markup, or text reordered by a bidirectional control character."""

from __future__ import annotations

import html
import re
import unicodedata

#: explicit bidirectional formatting characters (embeddings, overrides, isolates, marks): dropped from shown text
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
FSI, PDI = "\u2068", "\u2069"  # first-strong isolate ... pop directional isolate
#: WORD JOINER: invisible, not a space nor a word or punctuation character, so no link or shortcode pattern spans it
WJ = "\u2060"
_SPACES = re.compile(r"[\t\n\r\v\f\x85\u2028\u2029]")
_DROP = re.compile(f"[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f{BIDI_CONTROLS}]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}<>#|~$!&])")
_LIST_START = re.compile(r"^(\s*)(?:([-+])|(\d+)([.)]))(?=\s|$)")


def _rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)


def plain(value: object, *, lines: bool = False) -> str:
    """``value`` as one line of plain text (``lines``: its line breaks kept, as ``\\n``): line breaks and tabs
    become spaces, control characters (bidirectional overrides and isolates among them) are dropped, and text
    holding right-to-left letters is isolated (FSI ... PDI) so it cannot reorder what is shown around it."""
    text = str(value)
    if lines:
        text = "\n".join(plain(line) for line in re.split(r"\r\n|[\n\r\v\f\x85\u2028\u2029]", text))
        return text
    text = _DROP.sub("", _SPACES.sub(" ", text))
    return f"{FSI}{text}{PDI}" if _rtl(text) else text


def markdown(value: object) -> str:
    """``value`` for Streamlit Markdown (text, captions, labels), shown as typed: :func:`plain`, every Markdown
    punctuation character backslash-escaped (and a list marker that starts it), and a word joiner after each
    ``@``, after each ``:`` not before a space and between ``www`` and its dot, so no emoji or icon shortcode
    (``:smile:``, ``:material/home:``), colour directive or link (``https://…``, ``www.…``, ``name@host.com``) can
    form: Streamlit finds those after the escapes are undone."""
    text = _MD_SPECIAL.sub(r"\\\1", plain(value))
    text = _LIST_START.sub(lambda m: m[1] + ("\\" + m[2] if m[2] else m[3] + "\\" + m[4]), text)
    text = re.sub(r"(?i)(www)(?=\\?\.)", rf"\1{WJ}", text)
    return re.sub(r":(?=\S)", rf"\\:{WJ}", text).replace("@", f"@{WJ}")


def html_text(value: object) -> str:
    """``value`` for a label that reads HTML (plotly's hover, legend and titles): :func:`plain`, HTML-escaped."""
    return html.escape(plain(value), quote=True)
