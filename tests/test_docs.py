"""The words match the tree (issue #37): every repository path, `python -m` module and `marigold.` name that a
guide writes exists, and every Python example in docs/ runs, on a tiny checkpoint.

What is read is the tree as it is now (the guides, the package, the folders), not a list of names frozen here: a
file moved or a module split later is caught the day a guide still names its old place. Two small explicit tables
say what is not read as it stands: OUTPUT_PATHS (folders a command writes, which a guide names) and SUBSTITUTE
(the hub repo ids an example loads → tiny stand-ins). An example that cannot run on a tiny checkpoint says so in
its first line (`# docs-test: skip (reason)`), and few may.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The guides a newcomer reads. bench/RESULTS.md is a record, not a guide, but the paths it names must exist too.
GUIDES = sorted({ROOT / "README.md", ROOT / "nodes" / "README.md", ROOT / "train" / "README.md",
                 ROOT / "bench" / "RESULTS.md", *(ROOT / "docs").rglob("*.md")})

# Paths a guide writes that are not repository files, on purpose: what a command writes.
OUTPUT_PATHS = {
    "bench/last_run/",  # `python -m bench` writes its raw rows there
    "tests/artifacts/workflows/",  # the browser tests' screenshots (git-ignored)
}

# The "moved modules" table of docs/python.md names paths that are gone by design; it is checked on its own below.
MOVED_START, MOVED_END = "<!-- docs-test: moved -->", "<!-- docs-test: end moved -->"

SKIP_MARK = "# docs-test: skip"


def _top_dirs() -> list[str]:
    """The repository's top-level folders (tracked content, not caches or virtual environments)."""
    skip = {"__pycache__", ".git", ".venv", ".cache", ".pytest_cache", "runs", "out"}
    return sorted(p.name for p in ROOT.iterdir() if p.is_dir() and p.name not in skip
                  and (not p.name.startswith(".") or p.name == ".ci"))


def _text(path: Path) -> str:
    """A guide's text without the moved-modules table (its old paths are gone on purpose)."""
    text = path.read_text(encoding="utf-8")
    while MOVED_START in text:
        a = text.index(MOVED_START)
        b = text.index(MOVED_END, a)
        text = text[:a] + text[b + len(MOVED_END):]
    return text


def _path_refs(text: str) -> list[str]:
    """Repository paths written in a text: tokens that start with a top-level folder (`marigold/core/x.py`,
    `train/configs/y.yaml`, `docs/z.md`, `tests/test_x.py::test_y`), wherever they stand (code spans, commands,
    prose). `../shared/...` is the sibling folder, not a repository path."""
    text = re.sub(r"\]\([^)\s]*\)", "]", text)  # link targets are relative to the guide's folder: _link_refs
    tops = "|".join(re.escape(d) for d in _top_dirs())
    pattern = re.compile(rf"(?<![\w./\-~])(?:{tops})/(?:\{{[^}}\s]*\}}|[\w.*<>\-/])*")
    refs = []
    for m in pattern.finditer(text):
        ref = m.group(0).split("::")[0].rstrip(".,;:")
        refs.append(ref)
    return refs


def _link_refs(text: str) -> list[str]:
    """Targets of markdown links and images that are not URLs or anchors."""
    out = []
    text = re.sub(r"^```.*?^```|`[^`\n]*`", "", text, flags=re.S | re.M)  # `A[k](p)` in code is not a link
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        target = target.split("#")[0]
        if target and not re.match(r"[a-z]+:", target):
            out.append(target)
    return out


def _exists(base: Path, ref: str) -> bool:
    """A path, or a pattern: `{a,b}` needs every alternative; `<name>`, `NAME`-style placeholders and `*` need at
    least one file to match."""
    brace = re.search(r"\{([^}]*)\}", ref)
    if brace:
        return all(_exists(base, ref[:brace.start()] + alt + ref[brace.end():]) for alt in brace.group(1).split(","))
    if (base / ref).exists():
        return True
    if not re.search(r"[*<]|\b[A-Z][A-Z_]{2,}\b", ref):
        return False
    glob = re.sub(r"<[^>]*>|\b[A-Z][A-Z_]{2,}\b", "*", ref).rstrip("/")
    return any(base.glob(glob))


def stale_paths(path: Path, text: str | None = None) -> list[str]:
    text = _text(path) if text is None else text
    bad = [f"{path.relative_to(ROOT)}: `{ref}`" for ref in _path_refs(text)
           if ref not in OUTPUT_PATHS and not _exists(ROOT, ref)]
    bad += [f"{path.relative_to(ROOT)}: link ({ref})" for ref in _link_refs(text)
            if not _exists(path.parent, ref)]
    return bad


def test_every_path_a_guide_writes_exists():
    assert len(GUIDES) >= 10 and all(g.is_file() for g in GUIDES)
    bad = [b for g in GUIDES for b in stale_paths(g)]
    assert not bad, "guides name files that do not exist:\n" + "\n".join(bad)


def test_the_path_check_fails_on_a_stale_path():
    guide = ROOT / "docs" / "python.md"
    # stale paths of the kind the docs held (a flat module that moved, a renamed page, a recipe that is gone); names
    # no code will ever take, so that a compatibility shim added later cannot make this test pass vacuously
    for stale in ("the loader (`marigold/no_such_module.py`)", "see [video](../docs/videos.md)",
                  "python -m train.finetune --config train/configs/no_such_recipe.yaml",
                  "`tests/test_no_such.py::test_x`", "`train/data/{folder,no_such}.py`"):
        assert stale_paths(guide, stale), stale
    for fine in ("`marigold/core/checkpoint.py`", "[video](video.md)", "writes `out/photo_depth.png`",
                 "`train/configs/cpu_tiny.yaml`", "`tests/test_docs.py::test_x`", "`train/data/*.py`"):
        assert not stale_paths(guide, fine), fine


# --- python -m MODULE ------------------------------------------------------------------------------------------

def _modules(text: str) -> list[str]:
    """Modules run with `-m` in commands: `python -m X`, `python3 -m X`, `accelerate launch ... -m X`, `torchrun
    ... -m X`."""
    found = []
    for line in text.splitlines():
        if re.search(r"\b(python3?|accelerate|torchrun)\b", line):
            found += re.findall(r"(?<![\w-])-m\s+([A-Za-z_][\w.]*\w)", line)
    return found


def dead_modules(text: str) -> list[str]:
    bad = []
    for mod in _modules(text):
        try:
            spec = importlib.util.find_spec(mod)  # imports the parent packages only (`train`, `bench`: light)
        except ImportError:
            spec = None
        if spec is None:
            bad.append(mod)
    return bad


def test_every_python_m_module_exists():
    found = [m for g in GUIDES for m in _modules(_text(g))]
    assert {"marigold", "train.finetune", "train.evaluate", "bench.quality"} <= set(found)
    bad = [f"{g.relative_to(ROOT)}: python -m {m}" for g in GUIDES for m in dead_modules(_text(g))]
    assert not bad, "guides run modules that do not exist:\n" + "\n".join(bad)
    assert dead_modules("python -m marigold.no_such_module x") == ["marigold.no_such_module"]
    assert dead_modules("accelerate launch --num_processes 2 -m train.fine_tune --config x") == ["train.fine_tune"]


# --- marigold.NAME ---------------------------------------------------------------------------------------------

def _names(text: str) -> list[str]:
    return re.findall(r"(?<![\w./\-])marigold(?:\.[A-Za-z_]\w*)+", text)


def resolves(dotted: str) -> bool:
    """`marigold.a.b.c` is a module, or an attribute of one (a function, a class, a constant, a class's method)."""
    obj = importlib.import_module("marigold")
    parts = dotted.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        if not isinstance(obj, type(importlib)):
            return False
        try:
            obj = importlib.import_module(".".join(parts[:i + 1]))
        except ImportError:
            return False
    return True


def test_every_marigold_name_resolves():
    found = {n for g in GUIDES for n in _names(_text(g))}
    assert {"marigold.load", "marigold.predict"} <= found
    bad = sorted(n for n in found if not resolves(n))
    assert not bad, "guides name marigold.* that do not exist: " + ", ".join(bad)
    for dead in ("marigold.no_such_module", "marigold.predict_tile", "marigold.core.tiling.no_such",
                 "marigold.stereo.StereoVideoWriter"):  # marigold.stereo is the function, not the module
        assert not resolves(dead), dead
    assert resolves("marigold.geometry.stereo.StereoVideoWriter") and resolves("marigold.core.coalign")


def test_the_public_surface_is_written_down():
    """docs/python.md lists every name of `marigold.__all__` (the API), and the moved-modules table sends each old
    module to a place that exists and a public name that resolves."""
    import marigold

    text = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`([A-Za-z_]\w*)", text.split(MOVED_START)[0]))
    missing = sorted(set(marigold.__all__) - listed)
    assert not missing, f"docs/python.md does not list {missing}"
    table = text[text.index(MOVED_START):text.index(MOVED_END)]
    rows = [r for r in table.splitlines() if r.startswith("| `marigold/")]
    assert len(rows) >= 15
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        old, new, use = cells[0], cells[1], cells[2]
        assert re.fullmatch(r"`marigold/\w+\.py`", old), row
        for ref in re.findall(r"`(marigold/[\w/]+\.py)`", new):
            assert (ROOT / ref).is_file(), f"moved table: {ref} does not exist"
        names = _names(use)
        assert names and all(resolves(n) for n in names), row


# --- ```python blocks in docs/ run ------------------------------------------------------------------------------

def _python_blocks() -> list[tuple[str, int, str]]:
    blocks = []
    for path in sorted((ROOT / "docs").rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
            line = text[:m.start()].count("\n") + 1
            blocks.append((f"{path.relative_to(ROOT)}:{line}", line, m.group(1)))
    return blocks


BLOCKS = _python_blocks()

# What a block names that this machine cannot have (hub repo ids) → the tiny stand-in's fixture key; plus settings
# that keep a block to seconds on a tiny model. Substituted as text, before the block runs.
SUBSTITUTE = {
    '"prs-eth/marigold-depth-v1-1"': "{depth}",
    '"prs-eth/marigold-depth-v1-0"': "{depth}",
    '"prs-eth/rollingdepth-v1-0"': "{rollingdepth}",
    '"pcuenq/marigold-coco-segmentation"': "{segmentation}",
    'preset="fast"': 'preset="fast", processing_resolution=64',  # RollingDepth's preset is 768 px
    "frame_count=len(frames)": "frame_count=len(frames), processing_resolution=64",
}


def test_python_blocks_are_found_and_few_are_skipped():
    assert len(BLOCKS) >= 6
    skipped = [name for name, _, code in BLOCKS if code.startswith(SKIP_MARK)]
    assert len(skipped) <= max(1, len(BLOCKS) // 5), f"too many docs blocks skipped: {skipped}"
    for name, _, code in BLOCKS:
        assert SKIP_MARK not in code or code.startswith(SKIP_MARK), f"{name}: the skip mark must be the first line"


@pytest.fixture(scope="module")
def docs_models(make_checkpoint, segmentation_checkpoint, tmp_path_factory) -> dict[str, str]:
    """The tiny stand-ins, processing at 64 px (the tool writes 768, which the tiny UNet runs, slowly)."""
    root = tmp_path_factory.mktemp("docs-models")
    out = {}
    for key, name in (("depth", "depth"), ("rollingdepth", "rollingdepth")):
        folder = make_checkpoint(name, root / key)
        index = folder / "model_index.json"
        d = json.loads(index.read_text())
        if "default_processing_resolution" in d:
            d["default_processing_resolution"] = 64
            index.write_text(json.dumps(d, indent=2))
        out[key] = str(folder)
    out["segmentation"] = str(segmentation_checkpoint)
    return out


def _scene(tmp: Path) -> None:
    """The files the examples read, in the folder they run in: photo.jpg, street.jpg, frames/000000.png …"""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:128]
    base = np.stack([x / 128, y / 96, 0.5 + 0.0 * x], -1)
    for name in ("photo.jpg", "street.jpg"):
        Image.fromarray((base * 255).astype(np.uint8)).save(tmp / name)
    (tmp / "frames").mkdir()
    for i in range(6):
        frame = np.roll(base, 3 * i, axis=1) + rng.normal(0, 0.01, base.shape)
        Image.fromarray((frame.clip(0, 1) * 255).astype(np.uint8)).save(tmp / "frames" / f"{i:06d}.png")


@pytest.mark.parametrize("name,line,code", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_python_block_runs(name, line, code, docs_models, tmp_path, monkeypatch):
    if code.startswith(SKIP_MARK):
        reason = code.splitlines()[0][len(SKIP_MARK):].strip(" ()")
        assert reason, f"{name}: say why it is skipped"
        pytest.skip(reason)
    for old, new in SUBSTITUTE.items():
        code = code.replace(old, repr(new.format(**docs_models)) if new.startswith("{") else new)
    assert not re.search(r'"[\w-]+/[\w.-]+-v\d', code), f"{name}: a hub repo id without a tiny stand-in"
    _scene(tmp_path)
    monkeypatch.chdir(tmp_path)  # what a block writes lands here
    monkeypatch.setenv("MARIGOLD_CACHE", str(tmp_path / "cache"))
    script = tmp_path / "docs_block.py"  # run as a script (comfy node validate refuses exec() in a pack)
    script.write_text(code, encoding="utf-8")
    runpy.run_path(str(script), run_name="__docs__")


# --- the training guide stays a guide; its history stays in the lab notebook --------------------------------------

def test_train_readme_is_a_guide_with_a_command_first_in_each_task():
    lines = (ROOT / "train" / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"train/README.md is {len(lines)} lines: move history to docs/lab/"
    sections = {l[3:].strip(): i for i, l in enumerate(lines) if l.startswith("## ")}
    for task, command in (("Depth", "train.finetune"), ("Normals", "folder:"), ("Intrinsics", "train.finetune"),
                          ("Segmentation", "train.finetune"), ("Video", "--mode snippet"),
                          ("Your own modality", "register")):
        start = next((i for h, i in sections.items() if h.startswith(task)), None)
        assert start is not None, f"train/README.md has no section for {task}"
        first_screen = "\n".join(lines[start:start + 25])  # what a reader sees on arriving at the section
        assert "```" in first_screen and command in first_screen, f"{task}: no command on the section's first screen"
    text = "\n".join(lines)
    assert "docs/lab/" in text and not re.search(r"(Third|Fourth|Fifth|Sixth) run", text)


def test_every_lab_entry_says_its_date_machine_command_and_result():
    entries = sorted((ROOT / "docs" / "lab").glob("2*.md"))
    assert len(entries) >= 5
    index = (ROOT / "docs" / "lab" / "README.md").read_text(encoding="utf-8")
    for path in entries:
        text = path.read_text(encoding="utf-8")
        assert f"]({path.name})" in index, f"docs/lab/README.md does not link {path.name}"
        heads = text.count("\n## ")
        assert heads >= 1
        for field in ("**Date**: 20", "**Machine**:", "**Command**:", "**Result**:"):
            assert text.count(field) == heads, f"{path.name}: an entry lacks {field}"
