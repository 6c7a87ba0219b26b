"""Served mode (``VPS_MODE=served``), driven headlessly with ``AppTest``: catalogs only from the allow-list (no free
folder, a crafted link is refused), no editing without signing in (and editing after), hostile catalog text shown
as text on every page, uploads bounded, a search that takes too long is one line; and the settings, sign-in,
allow-list and index-cache eviction underneath."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.data.text import BIDI_CONTROLS, html_text, plain
from core.index.allowlist import catalog_roots, catalogs_under, is_allowed
from core.index.eviction import STAMP, cached_indexes, evict_indexes
from tests.test_app import _png_header_only, errors, run
from tests.test_app_state import mini_catalog
from tests.test_catalog_text import EMOJI, FRAGMENTS, LINK
from ui.messages import md

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TOKEN = "test-token-7f3a"  # set in the environment for these tests only; nothing is stored in the repo
HOSTILE = ["![t](http://x/y)", "<img src=x onerror=alert(1)>",
           "see https://evil.example, www.evil.example, a@evil.example", ":smile: :material/home: :red[alert]",
           "live \u202egpj.exe"]
PAGES = {"catalog": "pages/1_Catalog.py", "map": "pages/2_Embedding_map.py",
         "classifier": "pages/3_Classifier_vs_neighbours.py", "why": "pages/4_Why_these_results.py",
         "evaluation": "pages/5_Evaluation.py"}


def hostile_catalog(dst: Path) -> tuple[Path, list[str]]:
    """The mini catalog whose first two queries' products have hostile titles; returns it and those ids."""
    mini_catalog(dst)
    with open(dst / "queries.csv", newline="") as f:
        hostile_ids = list(dict.fromkeys(r["product_id"] for r in csv.DictReader(f)))[:len(HOSTILE)]
    with open(dst / "catalog.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if r["product_id"] in hostile_ids:
            r["title"] = HOSTILE[hostile_ids.index(r["product_id"])]
    with open(dst / "catalog.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dst, hostile_ids


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app served: one allowed root holding the catalog ``shop``, and links that lead out of it (a catalog.csv
    linked to /etc/passwd, a catalog folder linked to one outside); a catalog outside it; an admin token."""
    base = tmp_path_factory.mktemp("served")
    shop, ids = hostile_catalog(base / "roots" / "shop")
    outside = mini_catalog(base / "outside")
    (base / "roots" / "csvlink").mkdir()
    (base / "roots" / "csvlink" / "catalog.csv").symlink_to("/etc/passwd")
    (base / "roots" / "dirlink").symlink_to(outside)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"VPS_MODE": "served", "VPS_CATALOG_ROOTS": str(base / "roots"), "VPS_CACHE": str(base / "cache"),
                     "VPS_ADMIN_TOKEN": TOKEN}.items():
            mp.setenv(k, v)
        yield {"shop": shop, "outside": outside, "hostile_ids": ids}


def texts(at: AppTest) -> list[str]:
    """Every string the page renders as Markdown: text elements, captions, alerts, and widget labels / options
    (dataframes and the map component show their cells as plain text)."""
    out = []
    for kind in ("markdown", "caption", "title", "header", "subheader", "success", "info", "warning", "error"):
        out += [e.value for e in at.get(kind)]
    for kind in ("button", "selectbox", "multiselect", "radio", "text_input", "slider", "toggle"):
        for w in at.get(kind):
            out.append(w.label)
            if kind == "radio":
                out += list(w.options)
    for img in at.get("image"):
        out += [i.caption for i in img.proto.imgs if i.caption]
    return out


def assert_shown_as_text(at: AppTest, expect_shown: bool = True) -> None:
    seen = texts(at)
    for h in HOSTILE:
        assert not [t for t in seen if h in t], f"{h!r} reached Markdown unescaped"
    for t in [t for t in seen if re.search("evil|smile|alert|gpj", t)]:  # the hostile titles' words, wherever
        inert_markdown_text(t)
    if expect_shown:
        assert any(md(HOSTILE[0]) in t for t in seen), "the hostile title is not shown (escaped) at all"


def inert_markdown_text(t: str) -> None:
    """No link, shortcode or reordering forms in this Markdown (the page's own markup aside)."""
    text = re.sub(r"\\(.)", r"\1", t)
    assert not EMOJI.search(text) and ":material/" not in t and not LINK.search(text), t
    inner = [c for c in t if c in BIDI_CONTROLS]
    assert inner.count("\u2068") == inner.count("\u2069") and set(inner) <= {"\u2068", "\u2069"}, repr(t)


def start(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update(query or {})
    return run(at)


def page(at: AppTest, name: str) -> AppTest:
    at.switch_page(PAGES[name])
    return run(at)


# ------------------------------------------------------------------ reading
@pytest.mark.slow
def test_only_the_allow_list_is_offered_and_a_crafted_link_is_refused(served):
    at = start()
    # no "Other folder…", no sample, no linked file or folder that leads out of the root
    assert at.sidebar.selectbox(key="vps_catalog").options == ["Dataset: shop"]
    assert not [t for t in texts(at) if "root:" in t]
    keys = [t.key for t in at.sidebar.text_input]
    assert "vps_catalog_path" not in keys and "vps_spec_custom" not in keys
    assert not errors(at) and at.query_params["catalog"] == "shop"
    for crafted in ("/etc", str(served["outside"]), "../../etc", "shop/../../outside", "csvlink", "dirlink"):
        at = start({"catalog": crafted})
        assert len(errors(at)) == 1 and "is not offered on this server" in errors(at)[0], errors(at)
        assert at.sidebar.selectbox(key="vps_catalog").value == "Dataset: shop"
        assert at.query_params["catalog"] == "shop"
    at = start({"spec": "efficientnet-lite0+head:/etc"})  # a spec is a path too: refused
    assert len(errors(at)) == 1 and "is not offered on this server" in errors(at)[0]
    assert at.query_params["spec"] == "efficientnet-lite0"
    at = start({"spec": "efficientnet-lite0:ms+head:../../etc"})  # a relative head leading out of the cache too
    assert len(errors(at)) == 1 and "this app does not have" in errors(at)[0]
    assert at.query_params["spec"] == "efficientnet-lite0"

    page(at, "classifier")  # the catalog's own labelled queries only: no folder or CSV to type
    options = at.radio(key="cvn_source").options  # the catalog's own photo sets, nothing typed
    assert options and not {"A folder of <category>/<image> files", "A queries CSV"} & set(options), options
    assert not [t for t in at.text_input if t.key in ("cvn_folder", "cvn_csv", "cvn_root")]
    page(at, "evaluation")  # no other CSV, no other spec, and no evaluation run without signing in
    assert "Other CSV…" not in at.selectbox(key="ev_queries").options
    assert "ev_extra" not in [t.key for t in at.text_input]
    assert at.button(key="ev_run").disabled


# ------------------------------------------------------------------ editing
@pytest.mark.slow
def test_editing_needs_signing_in(served):
    shop = served["shop"]
    before = (shop / "catalog.csv").read_bytes()
    at = page(start(), "catalog")
    keys = [t.key for t in at.text_input]
    assert "add_pid" not in keys and "imp_path" not in keys and not at.get("file_uploader")
    assert not [b for b in at.button if b.key in ("remove_go", "compact_go", "imp_go")]
    assert sum("needs an administrator" in i.value for i in at.info) == 3

    at.sidebar.text_input(key="vps_token").set_value("not-the-token")
    run(at)
    assert "Wrong token." in errors(at) and "add_pid" not in [t.key for t in at.text_input]
    assert (shop / "catalog.csv").read_bytes() == before

    at.sidebar.text_input(key="vps_token").set_value(TOKEN)
    run(at)
    assert any("Signed in" in c.value for c in at.sidebar.caption)
    at.text_input(key="add_pid").set_value("NEW-9")
    at.text_input(key="add_title").set_value(HOSTILE[1])
    at.file_uploader(key="add_images").set_value([("a.jpg", (shop / "images" / sorted(
        p.name for p in (shop / "images").iterdir())[0]).read_bytes(), "image/jpeg")])
    next(b for b in at.button if b.label == "Add to the catalog").click()
    run(at)
    assert any("Added NEW-9" in s.value for s in at.success), errors(at)
    assert "NEW-9" in (shop / "catalog.csv").read_text()
    at.multiselect(key="remove_pick").set_value(["NEW-9"])
    run(at)
    at.button(key="remove_go").click()
    run(at)
    assert "NEW-9" not in (shop / "catalog.csv").read_text()

    at.sidebar.button(key="vps_sign_out").click()
    run(at)
    assert "add_pid" not in [t.key for t in at.text_input]


@pytest.mark.slow
def test_one_visitor_cannot_lock_the_administrator_out(served, monkeypatch):
    """Wrong tokens slow down and then refuse the session that types them; the right token in another session
    signs in after a bounded delay, and in the same session once its wait is over."""
    import time

    import ui.auth as auth

    monkeypatch.setattr(auth, "CHECK_DELAY_S", 0.01)
    # the session's wait outlasts the test's slowest run (the 2 s default could end between two runs of a busy
    # machine); the test ends it itself below
    monkeypatch.setattr(auth, "FIRST_WAIT_S", 600.0)
    monkeypatch.setattr(auth, "MAX_WAIT_S", 600.0)
    monkeypatch.setattr(auth, "address_limits", auth.AddressLimits())  # this test's tries only
    attacker = start()
    for i in range(auth.FREE_TRIES + 1):
        attacker.sidebar.text_input(key="vps_token").set_value(f"guess-{i}")
        run(attacker)
    assert any("Too many wrong tokens from this browser" in e for e in errors(attacker)), errors(attacker)
    attacker.sidebar.text_input(key="vps_token").set_value(TOKEN)  # still waiting: refused, unchecked
    run(attacker)
    assert not any("Signed in" in c.value for c in attacker.sidebar.caption)

    admin = start()  # another visitor: not limited by the attacker's tries
    admin.sidebar.text_input(key="vps_token").set_value(TOKEN)
    run(admin)
    assert any("Signed in" in c.value for c in admin.sidebar.caption), errors(admin)

    attacker.session_state["vps_auth_until"] = time.monotonic()  # as if its wait were over
    attacker.sidebar.text_input(key="vps_token").set_value(TOKEN)  # the right token works then
    run(attacker)
    assert any("Signed in" in c.value for c in attacker.sidebar.caption), errors(attacker)


@pytest.mark.slow
def test_wrong_tokens_from_one_address_slow_that_address_not_the_administrator(served, monkeypatch):
    """Wrong tokens from address A over several sessions: a new session from A gets no fresh tries (its try waits
    before it is checked), the right token from address B signs in without that wait, and from A after a bounded
    one."""
    import ui.auth as auth

    address, paused = ["203.0.113.7"], []
    monkeypatch.setattr(auth, "address_limits", auth.AddressLimits())
    monkeypatch.setattr(auth, "visitor_address", lambda: address[0])
    monkeypatch.setattr(auth, "_pause", paused.append)  # record the waits instead of sleeping them
    monkeypatch.setattr(auth, "_fails", [])
    for s in range(2):  # two sessions from A, each up to its own limit
        attacker = start()
        for i in range(auth.FREE_TRIES):
            attacker.sidebar.text_input(key="vps_token").set_value(f"guess-{s}-{i}")
            run(attacker)
    assert any("Too many wrong tokens from your address" in e for e in errors(attacker)), errors(attacker)

    fresh = start()  # a new session from A: slowed from its first try
    fresh.sidebar.text_input(key="vps_token").set_value("guess-fresh")
    run(fresh)
    slowed = paused[-1]
    assert slowed >= auth.FIRST_WAIT_S + auth.CHECK_DELAY_S, paused
    assert "Wrong token." in errors(fresh)[0]

    address[0] = "198.51.100.1"  # the administrator, elsewhere: only the server-wide check delay
    admin = start()
    admin.sidebar.text_input(key="vps_token").set_value(TOKEN)
    run(admin)
    assert any("Signed in" in c.value for c in admin.sidebar.caption), errors(admin)
    assert paused[-1] <= auth.MAX_CHECK_DELAY_S and slowed - paused[-1] >= auth.FIRST_WAIT_S, paused  # no wait of A's

    address[0] = "203.0.113.7"  # the administrator behind A's address: in, after a bounded wait
    admin_a = start()
    admin_a.sidebar.text_input(key="vps_token").set_value(TOKEN)
    run(admin_a)
    assert any("Signed in" in c.value for c in admin_a.sidebar.caption), errors(admin_a)
    assert auth.FIRST_WAIT_S < paused[-1] <= auth.MAX_WAIT_S + auth.MAX_CHECK_DELAY_S


def test_address_limits_are_bounded_and_thread_safe(monkeypatch):
    import ui.auth as auth

    limits = auth.AddressLimits()
    assert limits.wait("a", now=0.0) == 0.0
    for _ in range(1000):
        limits.wrong("a", now=1.0)
    assert limits.wait("a", now=2.0) == auth.MAX_WAIT_S  # a wait at most, never a refusal
    assert limits.wait("b", now=2.0) == 0.0  # other addresses are not touched
    assert limits.wait("a", now=2.0 + auth.ADDRESS_MEMORY_S) == 0.0  # forgotten after a while

    def in_threads(work) -> None:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    limits = auth.AddressLimits()
    in_threads(lambda k: [(limits.wrong("shared", now=1.0), limits.wait("shared", now=1.0)) for _ in range(5)])
    assert len(limits._fails["shared"]) == 40  # none lost
    monkeypatch.setattr(auth, "MAX_ADDRESSES", 50)
    in_threads(lambda k: [limits.wrong(f"10.0.{k}.{i}", now=2.0 + i) for i in range(40)])
    assert len(limits._fails) <= 50  # bounded: the addresses whose last wrong try is oldest are forgotten


def test_sign_in_delays_are_bounded_whatever_other_sessions_do(monkeypatch):
    import ui.auth as auth

    monkeypatch.setattr(auth, "_fails", [0.0] * 100_000)  # a flood of wrong tries from other sessions
    assert auth.check_delay(now=1.0) == auth.MAX_CHECK_DELAY_S <= 3.0
    assert auth.check_delay(now=1e6) == auth.CHECK_DELAY_S  # a minute later they no longer count
    waits = [auth.session_wait(n) for n in range(1, 40)]
    assert waits[: auth.FREE_TRIES - 1] == [0.0] * (auth.FREE_TRIES - 1)
    assert waits == sorted(waits) and max(waits) == auth.MAX_WAIT_S


def test_links_that_leave_the_root_are_not_offered_nor_read(tmp_path):
    from core.data.catalog import CatalogError, load_catalog

    roots = tmp_path / "roots"
    shop = mini_catalog(roots / "shop")
    outside = mini_catalog(tmp_path / "outside")
    (roots / "csvlink").mkdir()
    (roots / "csvlink" / "catalog.csv").symlink_to("/etc/passwd")
    (roots / "dirlink").symlink_to(outside)
    (roots / "nested").mkdir()
    (roots / "nested" / "catalog").symlink_to(outside)  # an import's layout, linked out
    (roots / "inner").symlink_to(shop)  # a link that stays inside the root is fine
    assert catalogs_under([roots]) == {"inner": roots / "inner", "shop": shop}
    assert catalogs_under([roots / "csvlink"]) == {}
    with pytest.raises(CatalogError) as e:
        load_catalog(roots / "csvlink")
    assert "leads outside the catalog folder" in str(e.value) and "root:" not in str(e.value)
    (shop / "images" / "evil.jpg").symlink_to(next((outside / "images").iterdir()))
    with open(shop / "catalog.csv", "a") as f:
        f.write("images/evil.jpg,EVIL,Evil,bag,,,1\n")
    cat = load_catalog(shop)
    assert "EVIL" not in cat.products and any("leaves the catalog folder" in str(s) for s in cat.skipped)


def test_an_error_never_quotes_a_file_at_length(tmp_path):
    from core.data.catalog import CatalogError, load_catalog

    (tmp_path / "catalog.csv").write_text(",".join(f"secret-column-{i}-" + "x" * 40 for i in range(50)) + "\n")
    with pytest.raises(CatalogError) as e:
        load_catalog(tmp_path)
    assert len(str(e.value)) < 250 and "secret-column-7" not in str(e.value)


# ------------------------------------------------------------------ hostile catalog text
@pytest.mark.slow
def test_hostile_titles_render_as_text_on_every_page(served):
    at = start()
    ids = served["hostile_ids"]
    cards = [c.value for c in at.caption if c.value.startswith("#")]
    assert cards and any(f"· {ids[0]} ·" in c for c in cards)  # the hostile product is among the results
    assert_shown_as_text(at)
    assert any(m.value == f"**{md(HOSTILE[0])}**" for m in at.markdown)  # the card's title, escaped

    assert_shown_as_text(page(at, "catalog"), expect_shown=False)  # the table shows cells as text
    table = at.dataframe[0].value
    assert {plain(h) for h in HOSTILE} <= set(table["title"])  # ...as typed (bidirectional controls dropped)

    page(at, "map")
    at.toggle(key="map_place").set_value(True)
    run(at)
    assert_shown_as_text(at, expect_shown=False)
    args = json.loads(at.get("component_instance")[0].proto.json_args)
    by_id = {p["product_id"]: p for p in args["points"]}
    for pid, title in zip(ids, HOSTILE):
        assert by_id[pid]["title"] == plain(title)  # set with textContent in the browser
        assert html_text(title) in by_id[pid]["hover"]
    assert all("<img" not in p["hover"] for p in args["points"])  # plotly's hover label: HTML-escaped
    assert all("<" not in g["name"] for g in args["groups"])

    page(at, "why")
    assert_shown_as_text(at)
    for chart in at.get("plotly_chart"):
        assert not any(h in chart.proto.spec for h in HOSTILE)


# ------------------------------------------------------------------ bounded work
@pytest.mark.slow
def test_uploads_are_bounded_in_bytes_and_pixels(served):
    import streamlit as st

    limit = min(st.get_option("server.maxUploadSize") * 1024 * 1024, 50 * 1024 * 1024)
    at = start()
    at.radio(key="source").set_value("Upload a photo")
    run(at)
    at.file_uploader(key="upload").set_value(("big.jpg", b"\xff" * (limit + 1), "image/jpeg"))
    run(at)
    assert len(errors(at)) == 1 and "this server takes photos up to" in errors(at)[0]
    at.file_uploader(key="upload").set_value(("bomb.png", _png_header_only(40_000, 40_000), "image/png"))
    run(at)
    assert len(errors(at)) == 1 and "pixel limit" in errors(at)[0]  # refused from the header, before decoding
    gif = io.BytesIO()  # 45 KB, 60 megapixels, a format decoded whole: over VPS_MAX_UPLOAD_DECODE_BYTES
    Image.new("P", (10_000, 6_000)).save(gif, "GIF")
    at.file_uploader(key="upload").set_value(("bomb.gif", gif.getvalue(), "image/gif"))
    run(at)
    assert len(errors(at)) == 1 and "decoding this image takes 60 MB, more than the 32 MB" in errors(at)[0]


@pytest.mark.slow
def test_a_search_that_takes_too_long_is_one_line(served, monkeypatch):
    from core.search.engine import Searcher

    release = threading.Event()
    real = Searcher.search

    def stuck(self, *a, **kw):
        release.wait(60)
        return real(self, *a, **kw)

    at = start()  # the index and filters are ready; now every search hangs
    monkeypatch.setenv("VPS_SEARCH_TIMEOUT", "1")
    monkeypatch.setattr(Searcher, "search", stuck)
    at.selectbox(key="example").set_value(sorted((served["shop"] / "queries").iterdir())[1])
    try:
        run(at)
        assert len(errors(at)) == 1 and "took longer than 1 s" in errors(at)[0]
        assert not [c for c in at.caption if c.value.startswith("#")]
    finally:
        release.set()


# ------------------------------------------------------------------ underneath
def test_mode_follows_the_listening_address_unless_set():
    from ui.settings import mode_for

    assert mode_for("", "localhost") == mode_for("", "127.0.0.1") == mode_for("", "::1") == "local"
    assert mode_for("", "0.0.0.0") == mode_for("", "192.168.1.20") == "served"
    assert mode_for("", None) == mode_for("", "") == "served"  # unset: Streamlit listens on every interface
    assert mode_for("served", "localhost") == "served" and mode_for("LOCAL", "0.0.0.0") == "local"
    with pytest.raises(ValueError, match="use 'local' or 'served'"):
        mode_for("public", "localhost")


def test_token_check_is_exact_and_needs_a_token():
    from ui.auth import check_token

    assert check_token(TOKEN, TOKEN)
    assert not check_token(TOKEN[:-1], TOKEN) and not check_token(TOKEN + "x", TOKEN)
    assert not check_token("", "")  # no token configured: nobody signs in


def test_allow_list_finds_catalogs_and_resolves_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("VPS_CACHE", str(tmp_path / "cache"))
    a = mini_catalog(tmp_path / "roots" / "a")
    imported = mini_catalog(tmp_path / "roots" / "b" / "catalog")  # an import's layout
    (tmp_path / "roots" / "empty").mkdir()
    lone = mini_catalog(tmp_path / "lone")
    found = catalogs_under(catalog_roots(f"{tmp_path / 'roots'}:{lone}"))
    assert found == {"a": a, "b": imported, "lone": lone}
    assert is_allowed(tmp_path / "roots" / "a" / ".." / "a", found)
    assert not is_allowed(tmp_path / "roots", found) and not is_allowed("/etc", found)
    (tmp_path / "link").symlink_to("/etc")
    assert not is_allowed(tmp_path / "link", found)
    monkeypatch.delenv("VPS_CATALOG_ROOTS", raising=False)
    assert catalog_roots()[2] == tmp_path / "cache" / "imports"  # default: the sample, the demo and the imports
    assert list(catalogs_under(catalog_roots())) == ["sample", "demo"]  # served: the real-photo demo too


def _fake_index(root: Path, name: str, used: float) -> Path:
    import os

    d = root / "indexes" / name
    (d / "gen-1").mkdir(parents=True)
    (d / "gen-1" / "manifest.json").write_text("{}")
    (d / "CURRENT").write_text("gen-1")
    (d / STAMP).write_text("")
    os.utime(d / STAMP, (used, used))
    return d


def test_index_cache_keeps_the_most_recently_used(tmp_path, monkeypatch):
    from core.config.store import held_lock

    monkeypatch.setenv("VPS_CACHE", str(tmp_path))
    d = [_fake_index(tmp_path, f"i{n}", 1_000_000 + n) for n in range(5)]  # i4 is the most recent
    umap = tmp_path / "umap" / "k0"
    umap.mkdir(parents=True)
    (umap / "manifest.json").write_text(json.dumps({"index_root": str(d[0].resolve())}))
    keep_umap = tmp_path / "umap" / "k4"
    keep_umap.mkdir(parents=True)
    (keep_umap / "manifest.json").write_text(json.dumps({"index_root": str(d[4].resolve())}))
    with held_lock(d[1] / ".lock", 1.0, RuntimeError()):  # being written: never deleted
        gone = evict_indexes(2, protect=(d[2],))
    assert sorted(p.name for p in gone) == ["i0"]
    assert [p.name for p in cached_indexes()] == ["i4", "i3", "i2", "i1"]
    assert not umap.exists() and keep_umap.exists()  # the map of a deleted index goes with it
    assert evict_indexes(0) == []  # 0: no limit
    assert sorted(p.name for p in evict_indexes(2)) == ["i1", "i2"]


@pytest.mark.slow
@hyp_settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(min_size=1, max_size=4)), min_size=2,
                         max_size=6).map("".join).filter(lambda s: len(md(s)) > 2), min_size=3, max_size=3))
@example(["https://evil.example/a?b=c\n", *["https://evil.example/a?b=c" * 2] * 2])  # once failed: a trailing newline
@example(["04\n", *["https://evil.example/a?b=c" * 2] * 2])  # once failed: a short title with a trailing newline
def test_generated_catalog_text_stays_text_on_the_result_pages(served, monkeypatch, generated):
    """Hypothesis-generated hostile titles and categories (tests/test_catalog_text.py) on the results' cards,
    captions, tables and charts of the Search and Why pages: no link, shortcode, markup or reordering forms."""
    import dataclasses

    from core.search.engine import Searcher

    real = Searcher.search

    def hostile_hits(self, *a, **kw):
        res = real(self, *a, **kw)
        hits = [dataclasses.replace(h, fields={**h.fields, "title": generated[i % 3], "category": generated[
            (i + 1) % 3]}) for i, h in enumerate(res.hits)]
        return dataclasses.replace(res, hits=hits)

    monkeypatch.setattr(Searcher, "search", hostile_hits)
    for at in (start(), page(start(), "why")):
        # whitespace at a title's ends (a generated trailing newline) is not shown; everything between is
        seen = [md(g).strip() for g in generated]
        every = texts(at)
        assert any(seen[0] in t for t in every), "the generated title is not shown at all"
        shown = [t for t in every if "\\" in t or "\u2060" in t or any(len(g) > 2 and g in t for g in seen)]
        for t in shown:
            inert_markdown_text(t)
        for chart in at.get("plotly_chart"):
            assert not set(chart.proto.spec) & set(BIDI_CONTROLS)
