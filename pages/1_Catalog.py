"""Catalog page: browse products, add one (images + fields), remove products, compact the index, import a
catalog (a dataset, any image folder or CSV). Served, changes need a signed-in administrator."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.data.catalog import load_catalog
from core.data.import_datasets import IMPORTERS
from core.data.import_folder import check_name, import_folder
from core.data.text import plain
from core.index.catalog_edit import add_product, remove_products
from core.index.workspace import catalog_label
from ui.auth import edit_gate
from ui.caches import Context, get_index
from ui.messages import USER_ERRORS, flash, md, show_error
from ui.nav import set_app_icons, use_app_navigation
from ui.query import checked_upload
from ui.sidebar import sidebar
from ui.state import choose_catalog
from ui.thumbnails import thumbnail_bytes
from ui.words import column_name

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
KINDS = {"Any catalog folder or CSV": "folder", "GroceryStoreDataset folder": "grocery",
         "clothing-dataset-small folder": "clothing"}
COMPACT_HELP = ("Compacts the index: drops removed products' vectors and re-balances the Annoy index over the added "
                "ones (no re-embedding).")


def overview(ctx: Context) -> None:
    m = ctx.index.manifest
    a, b, c, d = st.columns(4)
    a.metric("Products", len(ctx.index))
    b.metric("Photos searched", m.get("n_vectors", 0), help="Image vectors: one embedding per catalog photo.")
    if "n_removed" in m:  # an Annoy index: added vectors are searched exactly, removed ones hidden until compacted
        c.metric("Added since the last tidy-up", m.get("n_delta", 0),
                 help="Added vectors (the delta set) are searched exactly until the index is compacted.")
        d.metric("Removed, still taking space", m["n_removed"],
                 help="Removed products' vectors are hidden from search until the index is compacted.")


def browse(ctx: Context) -> None:
    live = ctx.index.live_products()
    table = pd.DataFrame([{"product_id": p, **ctx.index.products[p]} for p in live])
    needle = st.text_input("Find products", key="browse_find", placeholder="id, title, colour…")
    if needle and not table.empty:
        hit = table.apply(lambda r: r.astype(str).str.contains(needle, case=False, regex=False).any(), axis=1)
        table = table[hit]
    shown = table.map(plain).rename(columns=column_name)  # cells are shown as text; columns in words
    st.dataframe(shown, hide_index=True, width="stretch", height=280)
    pid = st.selectbox("Show the images of", table["product_id"].tolist() if not table.empty else [],
                       key="browse_show",
                       format_func=lambda p: plain(f"{p} — {ctx.index.products[p].get('title', '')}"))
    if pid:
        paths = [ctx.index.image_path(i) for i in ctx.index.vector_ids.get(pid, [])]
        cols = st.columns(6)
        for col, p in zip(cols, paths):
            if thumb := thumbnail_bytes(p):
                col.image(thumb, caption=md(p.rsplit("/", 1)[-1]), width="stretch")


def add_form(ctx: Context) -> None:
    if not edit_gate("adding a product"):
        return
    columns = load_catalog(ctx.catalog_dir).columns
    with st.form("add_product"):
        files = st.file_uploader("Images of the product", type=IMAGE_TYPES, accept_multiple_files=True,
                                 key="add_images")
        pid = st.text_input("Product code (leave empty for a new one)", key="add_pid",
                            help="product_id: the catalog's key for the product.")
        values = {c: st.text_input(md(column_name(c).capitalize()), key=f"add_{c}") for c in columns}
        submitted = st.form_submit_button("Add to the catalog")
    if submitted:
        with st.spinner("Adding the product and preparing its photos for search…"):
            images = [checked_upload(f.getvalue()) for f in files or []]
            res = add_product(ctx.catalog_dir, ctx.index, ctx.embedder, images, values, pid)
        extra = f" ({len(res.skipped)} image(s) skipped: {md(res.skipped[0])})" if res.skipped else ""
        flash(f"Added {md(res.product_ids[0])} with {len(res.images)} image(s); it is searchable now.{extra}")
        for key in ["add_images", "add_pid", *(f"add_{c}" for c in columns)]:  # empty the form for the next one
            st.session_state.pop(key, None)
        st.rerun()


def remove_form(ctx: Context) -> None:
    if not edit_gate("removing products or tidying up the search"):
        return
    live = ctx.index.live_products()
    pick = st.multiselect("Products to remove", live, key="remove_pick",
                          format_func=lambda p: plain(f"{p} — {ctx.index.products[p].get('title', '')}"))
    if st.button("Remove from the catalog", key="remove_go", disabled=not pick):
        res = remove_products(ctx.catalog_dir, ctx.index, pick)
        flash(f"Removed {md(', '.join(res.product_ids))} from the catalog and the search "
              "(their image files stay on disk).")
        st.rerun()
    st.divider()
    st.caption("Tidying up frees the space removed products still take and keeps searching quick after many "
               "additions; no photo is read again.", help=COMPACT_HELP)
    if st.button("Tidy up the search", key="compact_go", help=COMPACT_HELP):
        with st.spinner("Tidying up…"):
            idx = ctx.index.compact()
        flash(f"Tidied up the search: {len(idx)} products, all searchable.")
        st.rerun()


def import_form(ctx: Context) -> None:
    """Import a catalog into the cache (it then appears in the sidebar) and index it, with progress."""
    if not edit_gate("importing a catalog"):
        return
    st.caption("Copies the catalog into the app's own folder, prepares its photos for search with the network in "
               "use and adds it to the sidebar's catalogs.",
               help="Copied or hard-linked into the cache's imports folder, then indexed with the current embedder.")
    kind = KINDS[st.radio("What", list(KINDS), key="imp_kind", horizontal=True)]
    path = st.text_input("Folder (or CSV) on this machine", key="imp_path",
                         placeholder="/data/GroceryStoreDataset" if kind == "grocery" else "/path/to/catalog")
    name = st.text_input("Name in the sidebar", key="imp_name", value=kind if kind != "folder" else "",
                         placeholder="my-shop")
    if not st.button("Import", key="imp_go", type="primary", disabled=not (path.strip() and name.strip())):
        return
    out = Path(get_import_root()) / check_name(name)
    bar = st.progress(0.0, text="Copying the catalog…")
    if kind == "folder":
        rep = import_folder(path.strip(), name.strip(), out,
                            progress=lambda i, n: bar.progress(i / max(n, 1) * 0.3, text=f"Copying {i}/{n}…"))
    else:
        rep = IMPORTERS[kind](path.strip(), out)
    bar.progress(0.3, text=f"Imported {rep.summary()}; preparing the photos for search…")
    catalog = out / "catalog"
    get_index(catalog, ctx.embedder)  # its own progress bar while it builds
    bar.progress(1.0, text="Done.")
    choose_catalog(name.strip())
    flash(f"Imported {md(name.strip())}: {md(rep.summary())}; the sidebar shows it as "
          f"{md(catalog_label(name.strip()))} now.")
    st.rerun()


def get_import_root() -> Path:
    from core.config.paths import cache_dir

    return cache_dir() / "imports"


def main() -> None:
    use_app_navigation()
    set_app_icons()
    st.set_page_config(page_title="Catalog · Visual product search", page_icon="🗂️", layout="wide")
    ctx = sidebar()
    if ctx is None:
        st.stop()
    st.title(":material/inventory_2: Catalog")
    where = f"; index {ctx.location}" if ctx.location else ""
    st.caption("Changes are saved to the catalog and its search at once.",
               help=md(f"Catalog folder {ctx.catalog_dir}{where}: edits go to its catalog.csv and the search "
                       f"index. Index: {ctx.index.summary}."))
    flash()
    try:
        overview(ctx)
        browse_tab, add_tab, remove_tab, import_tab = st.tabs(["Browse", "Add a product", "Remove / tidy up",
                                                               "Import a catalog"])
        with browse_tab:
            browse(ctx)
        with add_tab:
            add_form(ctx)
        with remove_tab:
            remove_form(ctx)
        with import_tab:
            import_form(ctx)
    except USER_ERRORS as e:
        show_error(e)


main()
