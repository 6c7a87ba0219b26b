"""The paths users take, as they take them: the README's commands and every ``--help``, run as subprocesses with
the defaults a user gets (the cached embedder loader, no test-only flags), each with a timeout."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

from core.cli import VERBS, build_parser

README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def readme_commands() -> list[str]:
    """Every ``python -m core ...`` line of the README's bash blocks, in order."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip().startswith("python -m core ")]


def run_cli(args: list[str], tmp: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_the_readme_names_the_user_paths():
    cmds = readme_commands()
    verbs = [shlex.split(c)[3] for c in cmds]
    for verb in ("index", "search", "evaluate", "train-metric"):
        assert verb in verbs, verb
    assert any("+head:" in c for c in cmds), "the README shows how to use a trained head"


@pytest.mark.slow
@pytest.mark.timeout(2400)  # training and three indexings on 2 cores; each command has its own timeout below
def test_readme_commands_run_as_written(tmp_path):
    """index -> search -> evaluate, then train-metric -> index --model ...+head: -> search -> evaluate: every
    README command, in order, with /tmp paths moved into a temporary folder. A hang fails the test."""
    for cmd in readme_commands():
        args = [a.replace("/tmp/", f"{tmp_path}/") for a in shlex.split(cmd)[3:]]
        r = run_cli(args, tmp_path, timeout=1200)
        assert r.returncode == 0, f"{cmd}\n{r.stderr[-2000:]}"
        assert "Traceback" not in r.stderr
        if args[0] == "train-metric":  # the spec it prints is the one the README uses next
            printed = re.search(r"embedder spec: (\S+)", r.stdout).group(1)
            assert printed in {a.replace("/tmp/", f"{tmp_path}/") for c in readme_commands() for a in shlex.split(c)}
        if args[0] == "evaluate":
            assert '"recall@1"' in r.stdout


def test_every_verb_lists_help_for_every_option():
    for verb in VERBS:
        sub = build_parser(verb)._subparsers._group_actions[0].choices[verb]
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"{verb} {action.option_strings or action.dest} has no help line"


def test_help_and_sample_load_no_torch(tmp_path):
    """``--help`` of every verb, and ``sample``, import no torch (they must answer at once)."""
    code = (
        "import sys\nfrom core.cli import VERBS, main\n"
        "for verb in [None, *VERBS]:\n"
        "    try:\n        main([verb, '--help'] if verb else ['--help'])\n"
        "    except SystemExit as e:\n        assert e.code == 0, verb\n"
        f"assert main(['sample', '--out', {str(tmp_path / 's')!r}]) == 0\n"
        "heavy = [m for m in ('torch', 'annoy', 'umap', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "HEAVY []" in r.stdout
    assert (tmp_path / "s" / "catalog.csv").read_bytes() == (ROOT / "sample_catalog" / "catalog.csv").read_bytes()


def test_bad_embedder_spec_is_one_line_and_blocks_no_one(tmp_path):
    r = run_cli(["index", "--catalog", "sample_catalog", "--out", str(tmp_path / "i"), "--model",
                 "efficientnet-lite0+head:/nowhere"], tmp_path, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    from core.embedding import load_embedder

    with pytest.raises(ValueError):
        load_embedder("efficientnet-lite0+head:/nowhere")
    assert load_embedder("open_clip:vps-tiny-vit:random").dim > 0  # the failed load holds no lock


def test_same_query_file_same_vector_through_cli_app_and_batch_paths(tmp_path, embedder):
    """A large JPEG gives one vector whether it comes as a path (CLI), as uploaded bytes (app) or through the
    batch embedder (evaluation): one decode policy."""
    from core.embedding.decode import Crop
    from core.embedding.query import embed_queries, embed_query

    rng = np.random.default_rng(0)
    big = Image.fromarray(rng.integers(0, 255, (2400, 3000, 3), dtype=np.uint8)).resize((3000, 2400))
    path = tmp_path / "big.jpg"
    big.save(path, quality=90)
    cli = embed_query(embedder, path).vector
    app = embed_query(embedder, path.read_bytes(), crop=Crop()).vector
    (batch,), errors = embed_queries(embedder, [path])
    assert not errors
    np.testing.assert_allclose(cli, app, atol=1e-5)
    np.testing.assert_allclose(cli, batch.vector, atol=1e-5)
    cropped = embed_query(embedder, path.read_bytes(), crop=Crop(0.25, 0.25, 0.75, 0.75)).vector
    assert float(cli @ cropped) < 0.999  # the crop is applied


def test_readme_layout_names_every_engine_module():
    """docs/architecture.md lists each package of core/ with exactly the modules it holds."""
    section = ARCHITECTURE.read_text()
    listed = {m[0]: set(re.findall(r"`(\w+/?)`", m[1])) for m in re.findall(r"\| `core/(\w+)/` \| ([^|]+) \|", section)}
    core = ROOT / "core"
    tree = {d.name: {p.stem for p in d.glob("*.py") if p.stem != "__init__"} | {f"{s.name}/" for s in d.iterdir()
                                                                              if (s / "__init__.py").is_file()}
            for d in core.iterdir() if (d / "__init__.py").is_file()}
    assert listed == tree
