"""Every workflow in workflows/, as a user meets it: dropped onto ComfyUI's real web page, then run from there.

The real ComfyUI of the e2e tests (tests/nodes_comfyui.py, the same base directory: tiny checkpoints, a photo, a
video, random-weight SD1.5 and ControlNet files) serves its own front end (comfyui-frontend-package); Debian's
Chromium, driven by Playwright from PyPI (no browser download), opens it in a 1600×1000 window. For each
workflow: the JSON file is dropped on the canvas with a real drop event carrying the file; the graph must load
with no missing-node or error dialog and open fully visible; the test's photo, video and tiny checkpoints are
picked in the widgets (each must be one the widget offers); Run is pressed; the job must complete and write
outputs of the expected size. A screenshot of each loaded workflow goes to ``$MARIGOLD_ARTIFACTS`` (default
``tests/artifacts/``, git-ignored). Two broken workflows show that these checks fail when they should: a
misspelt node type, and a widget value out of its range.

Facts for driving the page: ../shared/COMFYUI_TESTING.md.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nodes_comfyui as comfy

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
ARTIFACTS = Path(os.environ.get("MARIGOLD_ARTIFACTS", ROOT / "tests" / "artifacts")) / "workflows"
VIEW = {"width": 1600, "height": 1000}
P = "MarigoldSuite_"
# what the test picks in the widgets instead of the published models and the user's files; a workflow that
# names another published model needs a tiny stand-in here (and in comfy.TINY)
CHECKPOINT_FOR = {
    "prs-eth/marigold-depth-v1-1": "marigold/tiny-depth",
    "prs-eth/marigold-depth-v1-0": "marigold/tiny-depth",
    "prs-eth/marigold-normals-v1-1": "marigold/tiny-normals",
    "prs-eth/marigold-depth-lcm-v1-0": "marigold/tiny-lcm",
    "prs-eth/rollingdepth-v1-0": "marigold/tiny-rollingdepth",
    "pcuenq/marigold-coco-segmentation": "marigold/tiny-seg",
}
WIDGETS = {  # node type → widget name → value (checkpoint: see CHECKPOINT_FOR)
    "LoadImage": {"image": "example.png"},
    P + "LoadSparseDepth": {"file": "example_sparse.png"},
    "LoadVideo": {"file": "example.mp4"},
    P + "LoadMarigold": {"dtype": "fp32"},
    "KSampler": {"steps": 1},  # random full-size SD1.5 weights: one step shows the graph runs
    "EmptyLatentImage": {"width": 64, "height": 64},
    P + "MarigoldTiledDepth": {"tile_overlap": 16},  # less than the 64-px tiles ANY_NODE makes; the photo tiles 2×1
}
ANY_NODE = {"processing_resolution": 64, "denoising_steps": 2}  # cheap sampling, wherever these widgets are
# expected (W, H) of what an output node writes, where it is not the input photo's (or video's) size
SIZES = {
    "marigold_normals_side_by_side": {"SaveImage": (2 * comfy.PHOTO_SIZE[0], comfy.PHOTO_SIZE[1])},
    "marigold_depth_controlnet_sd15": {"SaveImage": (64, 64)},
    # the colour map with its metre scale bar beside it: the photo's height, wider by the bar and its labels
    "marigold_metric_depth": {"SaveImage": (None, comfy.PHOTO_SIZE[1])},
}
OUTPUT_TYPES = ("SaveImage", "PreviewImage", P + "SaveDepth16")


@pytest.fixture(scope="module")
def server(tmp_path_factory, make_checkpoint):
    py, comfy_dir = comfy.ensure()
    base = comfy.prepare_base(tmp_path_factory.mktemp("browser_base"), make_checkpoint, py, comfy_dir)
    from conftest import as_segmentation_checkpoint

    as_segmentation_checkpoint(make_checkpoint("depth", copy_to=base / "models" / "marigold" / "tiny-seg"))
    s = comfy.Server(base, py, comfy_dir).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("Chromium is not installed: apt-get install -y chromium (.ci/run does this).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport=VIEW)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(server.url)
    pg.wait_for_function("() => window.app && window.app.graph && window.app.canvas", timeout=120_000)
    pg.wait_for_timeout(1500)
    pg.keyboard.press("Escape")  # a fresh user folder opens the Templates dialog first
    pg.wait_for_timeout(500)
    yield pg
    context.close()


# --- what a user does -------------------------------------------------------------------------------------------


def drop(page, name: str, text: str) -> None:
    """Drag the file onto the canvas: dragenter, dragover and drop events carrying it, as a browser sends them."""
    page.evaluate("""([text, name]) => {
        const canvas = window.app.canvas.canvas;  // the graph's own canvas element
        const r = canvas.getBoundingClientRect();
        const dt = new DataTransfer();
        dt.items.add(new File([text], name, {type: 'application/json'}));
        for (const type of ['dragenter', 'dragover', 'drop'])
            canvas.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt,
                                                      clientX: r.x + r.width / 2, clientY: r.y + r.height / 2}));
    }""", [text, name])


def graph_state(page) -> dict:
    return page.evaluate("""() => {
        // the graph canvas is the largest; smaller visible canvases (the minimap) cover part of it
        const rects = [...document.querySelectorAll('canvas')].map(c => c.getBoundingClientRect())
            .filter(r => r.width > 0 && r.height > 0).sort((a, b) => b.width * b.height - a.width * a.height);
        const canvas = rects[0];
        const covers = rects.slice(1).map(r => [r.x, r.y, r.x + r.width, r.y + r.height]);
        const ds = window.app.canvas.ds;
        const nodes = window.app.graph._nodes.map(n => {
            const [x, y] = ds.convertOffsetToCanvas([n.pos[0], n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT]);
            const [x1, y1] = ds.convertOffsetToCanvas([n.pos[0] + n.size[0], n.pos[1] + n.size[1]]);
            return {id: n.id, type: n.type, has_errors: !!n.has_errors, box: [x, y, x1, y1],
                    widgets: (n.widgets || []).map(w => ({name: w.name, value: w.value,
                              options: (w.options && Array.isArray(w.options.values)) ? w.options.values : null}))};
        });
        const dialogs = [...document.querySelectorAll('.p-dialog')]
            .filter(d => d.offsetParent !== null).map(d => d.innerText.slice(0, 400));
        return {nodes, dialogs, covers, canvas: [canvas.x, canvas.y, canvas.x + canvas.width, canvas.y + canvas.height]};
    }""")


def load_workflow(page, path: Path, text: str | None = None) -> dict:
    """Drop the workflow and check that it loads whole: every node known, no dialog, everything on screen."""
    text = path.read_text() if text is None else text
    want = sorted(n["type"] for n in json.loads(text)["nodes"])
    drop(page, path.name, text)
    page.wait_for_function("(n) => window.app.graph._nodes.length === n", arg=len(want), timeout=60_000)
    page.wait_for_timeout(1500)  # dialogs and the canvas redraw come a moment after the graph
    state = graph_state(page)
    assert sorted(n["type"] for n in state["nodes"]) == want, state["nodes"]
    broken = [n["type"] for n in state["nodes"] if n["has_errors"]]
    assert not broken and not state["dialogs"], f"{path.name}: missing or broken nodes {broken}, " \
                                                f"dialogs {state['dialogs']}"
    left, top, right, bottom = state["canvas"]

    def inside(c, b) -> bool:  # a page element within the node's own box is its own widget (Preview 3D's viewer)
        return b[0] <= c[0] and b[1] <= c[1] and c[2] <= b[2] and c[3] <= b[3]

    def hidden(b) -> bool:  # off the canvas, or under the minimap or another node's page element
        return (b[0] < left or b[1] < top or b[2] > right or b[3] > bottom
                or any(b[0] < c[2] and c[0] < b[2] and b[1] < c[3] and c[1] < b[3] and not inside(c, b)
                       for c in state["covers"]))

    # below a zoom of ~0.57 the front end draws nodes as bare boxes, without titles or widgets
    assert not page.evaluate("() => window.app.canvas.low_quality"), \
        f"{path.name} opens zoomed out too far to read (scale {page.evaluate('() => window.app.canvas.ds.scale')})"
    outside = [(n["type"], [round(v) for v in n["box"]]) for n in state["nodes"] if hidden(n["box"])]
    assert not outside, f"{path.name} does not open fully visible in {VIEW}: {outside} (canvas {state['canvas']}, " \
                        f"covered by {state['covers']})"
    return state


def pick_widgets(page, state: dict) -> None:
    """Choose the test's files and tiny checkpoints in the widgets; a combo value must be one it offers."""
    changes = []
    for n in state["nodes"]:
        want = {**{k: v for k, v in ANY_NODE.items()}, **WIDGETS.get(n["type"], {})}
        for w in n["widgets"]:
            value = want.get(w["name"], w["value"])
            if n["type"] == P + "LoadMarigold" and w["name"] == "checkpoint":
                value = CHECKPOINT_FOR.get(w["value"], w["value"])
            if w["name"] not in want and value == w["value"]:
                continue
            if w["options"] is not None:
                assert value in w["options"], f"{n['type']}.{w['name']}: {value!r} is not offered: {w['options']}"
            changes.append([n["id"], w["name"], value])
    page.evaluate("""(changes) => {
        for (const [id, name, value] of changes) {
            const node = window.app.graph.getNodeById(id);
            const w = node.widgets.find(w => w.name === name);
            w.value = value;
            if (w.callback) w.callback(value, window.app.canvas, node);
        }
        window.app.graph.setDirtyCanvas(true, true);
    }""", changes)


def press_run(page, server, timeout: float = 600.0) -> dict:
    """Press Run; the job must be accepted and complete. Returns its history entry."""
    with page.expect_response(lambda r: r.url.endswith("/prompt") and r.request.method == "POST") as resp:
        page.get_by_role("button", name="Run", exact=True).first.click()
    body = resp.value.json()
    assert resp.value.status == 200 and "prompt_id" in body, \
        f"the server refused the job ({resp.value.status}): {json.dumps(body)[:2000]}"
    entry = server.wait(body["prompt_id"], timeout)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    return entry


def output_sizes(server, entry: dict) -> dict[str, list[tuple[int, int]]]:
    """(W, H) of every file each output node wrote, by node id."""
    sizes = {}
    for nid, out in entry["outputs"].items():
        paths = []  # every file the node reports: {filename, subfolder, type} records under any key ("images",
        for key, value in out.items():  # "files", Save 3D Model's "3d"), or Preview 3D's bare name in output/
            for f in value if isinstance(value, list) else []:
                if isinstance(f, dict) and "filename" in f:
                    paths.append(server.base / f.get("type", "output") / f.get("subfolder", "") / f["filename"])
                elif key == "result" and isinstance(f, str) and f:
                    paths.append(server.base / "output" / f)
        got = []
        for p in paths:
            if p.suffix == ".npy":
                got.append(tuple(np.load(p).shape[::-1][:2]))
            elif p.suffix == ".exr":
                from marigold.io.images import read_exr

                got.append(tuple(read_exr(p).shape[::-1][:2]))
            elif p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
                got.append(Image.open(p).size)
            else:  # a video, a mesh…: it must exist and not be empty; its size is not an image size
                assert p.is_file() and p.stat().st_size > 0, p
                got.append(None)
        sizes[nid] = got
    return sizes


def docs_copy(shot: Path, out: Path, width: int = 800, max_bytes: int = 60_000) -> None:
    """The screenshot without the side bar and tab strip, shrunk to a JPEG of at most ``max_bytes``."""
    im = Image.open(shot).convert("RGB")
    im = im.crop((56, 36, im.width, im.height))
    im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    for quality in (80, 70, 60, 50, 40):
        im.save(out, quality=quality, optimize=True, progressive=True)
        if out.stat().st_size <= max_bytes:
            return
    raise AssertionError(f"{out} is over {max_bytes} bytes even at JPEG quality 40")


# --- the tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.stem for w in WORKFLOWS])
def test_workflow_loads_and_runs_in_the_browser(page, server, workflow):
    state = load_workflow(page, workflow)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{workflow.stem}.png"
    page.screenshot(path=str(shot))
    if os.environ.get("MARIGOLD_DOCS_SCREENSHOTS"):  # refresh the READMEs' pictures: MARIGOLD_DOCS_SCREENSHOTS=1
        docs_copy(shot, ROOT / "docs" / "workflows" / f"{workflow.stem}.jpg")
    pick_widgets(page, state)
    entry = press_run(page, server)
    types = {str(n["id"]): n["type"] for n in state["nodes"]}
    outputs = {nid: t for nid, t in types.items()
               if t in OUTPUT_TYPES or t.removeprefix(P).startswith(("Save", "Preview"))}
    assert outputs, f"{workflow.name} has no output node"
    sizes = output_sizes(server, entry)
    default = comfy.VIDEO_SIZE if "LoadVideo" in types.values() else comfy.PHOTO_SIZE
    for nid, t in outputs.items():
        assert sizes.get(nid), f"{t} (node {nid}) wrote nothing: {entry['outputs']}"
        want = SIZES.get(workflow.stem, {}).get(t, default)
        got = {(None, s[1]) if want[0] is None else s for s in set(sizes[nid]) - {None}}  # width None: any width
        assert got in (set(), {want}), f"{t} (node {nid}) wrote {sizes[nid]}, expected {want}"


def _broken_depth_workflow(edit) -> tuple[Path, str]:
    path = ROOT / "workflows" / "marigold_depth.json"
    wf = json.loads(path.read_text())
    edit(wf)
    return path, json.dumps(wf)


def test_a_misspelt_node_type_fails_the_load_check(page):
    def misspell(wf):
        next(n for n in wf["nodes"] if n["type"] == P + "Colorize")["type"] = P + "Colourize"

    path, text = _broken_depth_workflow(misspell)
    with pytest.raises(AssertionError, match="missing or broken nodes"):
        load_workflow(page, path, text)


def test_a_widget_value_out_of_range_fails_the_run_check(page, server):
    def out_of_range(wf):
        node = next(n for n in wf["nodes"] if n["type"] == P + "MarigoldDepth")
        node["widgets_values"][1] = 0  # ensemble_size: at least 1

    path, text = _broken_depth_workflow(out_of_range)
    state = load_workflow(page, path, text)  # it loads: the front end takes the value as saved
    ensemble = next(w for n in state["nodes"] if n["type"] == P + "MarigoldDepth" for w in n["widgets"]
                    if w["name"] == "ensemble_size")
    assert ensemble["value"] == 0
    pick_widgets(page, state)
    with pytest.raises(AssertionError, match="refused the job.*ensemble_size"):
        press_run(page, server)
