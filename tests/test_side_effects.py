"""A good neighbour: loading, predicting and unloading change no process-wide setting of the host (issue 22).

ComfyUI runs every node pack in one process. A setting changed for our own speed (torch's thread count, the
denormal flag, warnings filters, logging, the environment, another package's classes, the hub's progress-bar
switch) is a setting changed under every other pack too, even when restored afterwards: another thread may be
running torch work meanwhile. The cycle therefore runs in a fresh process whose "host" thread keeps doing torch
work and records the thread count it sees; the setters of process-wide state are wrapped, so that a change undone
before anyone looked is seen too. Settings are compared around `import marigold` (with the dependencies a host
has imported already) and around a warm load-predict-unload cycle. The first load is cold (diffusers' UNet not
yet imported), the case where the loader used to lower the thread count while diffusers imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(r"""
    import gc, json, logging, os, sys, threading, warnings
    import numpy as np
    import torch

    ckpt = sys.argv[1]
    torch.set_num_threads(3)  # the host's own choice, different from anything we might pick
    torch.set_num_interop_threads(2)

    def denormals_kept():  # flush-to-zero would turn the subnormal into 0
        return (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() != 0.0

    def logging_state():
        loggers = {"": logging.getLogger()} | {n: l for n, l in logging.root.manager.loggerDict.items()
                                                 if isinstance(l, logging.Logger)}
        return {n: [l.level, [repr(h) for h in l.handlers], l.propagate, l.disabled] for n, l in loggers.items()}

    def settings():
        from huggingface_hub.utils import are_progress_bars_disabled
        return {
            "torch threads": torch.get_num_threads(),
            "torch interop threads": torch.get_num_interop_threads(),
            "default dtype": str(torch.get_default_dtype()),
            "denormals kept": denormals_kept(),
            "grad enabled": torch.is_grad_enabled(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "float32 matmul precision": torch.get_float32_matmul_precision(),
            "cudnn benchmark": torch.backends.cudnn.benchmark,
            "tf32 matmul": torch.backends.cuda.matmul.allow_tf32,
            "switch interval": sys.getswitchinterval(),
            "recursion limit": sys.getrecursionlimit(),
            "numpy errors": np.geterr(),
            "warnings filters": [repr(f) for f in warnings.filters],
            "logging": logging_state(),
            "environment": dict(os.environ),
            "hub progress bars disabled": are_progress_bars_disabled(),
        }

    def foreign_patches():  # a function of ours installed on another package's class
        found = []
        for name, mod in list(sys.modules.items()):
            if mod is None or not name.split(".")[0] in ("torch", "diffusers", "transformers", "huggingface_hub"):
                continue
            for cname, cls in list(vars(mod).items()):
                if isinstance(cls, type) and cls.__module__ == name:
                    for aname, attr in vars(cls).items():
                        owner = getattr(attr, "__module__", None) or ""
                        if owner.split(".")[0] in ("marigold", "nodes"):
                            found.append(f"{name}.{cname}.{aname} = {owner}")
        return found

    # Setters of process-wide state, wrapped so that any call during the cycle is seen even when it is undone
    # before the host thread samples anything.
    # (Setting a value that is already current is no change: transformers' from_pretrained sets the default dtype
    # to float32 and back while it builds the text encoder on a checkpoint's first use.)
    calls = []
    def recorded(owner, name, current=None):
        real = getattr(owner, name)
        def setter(*args, **kwargs):
            if current is None or args[:1] != (current(),):
                where = sys._getframe(1)
                calls.append(f"{name}{args} from {where.f_code.co_filename}:{where.f_lineno}")
            return real(*args, **kwargs)
        setattr(owner, name, setter)
    recorded(torch, "set_num_threads", torch.get_num_threads)
    recorded(torch, "set_num_interop_threads", torch.get_num_interop_threads)
    recorded(torch, "set_default_dtype", torch.get_default_dtype)
    recorded(torch, "set_float32_matmul_precision", torch.get_float32_matmul_precision)
    recorded(torch, "set_flush_denormal")
    recorded(torch, "use_deterministic_algorithms")
    recorded(sys, "setswitchinterval", sys.getswitchinterval)

    seen, stop = set(), threading.Event()
    def host_work():  # another node pack, busy on its own thread
        a = torch.randn(96, 96)
        while not stop.is_set():
            seen.add(torch.get_num_threads())
            a = torch.tanh(a @ a.T / 96)
    host = threading.Thread(target=host_work, daemon=True)
    host.start()

    def cycle():
        model = marigold.load(ckpt, device="cpu", progress=False)
        out = marigold.predict(model, torch.rand(3, 40, 56), ensemble_size=3, num_inference_steps=1,
                               processing_resolution=32, seed=0)
        assert torch.isfinite(out.prediction).all()
        del model, out
        gc.collect()

    def diff(a, b):
        out = {k: [a[k], b[k]] for k in a if a[k] != b[k] and k != "logging"}
        # a logger that existed must be as it was; a new one (a module's getLogger) must hold no handler
        changed = {n: [a["logging"].get(n), l] for n, l in b["logging"].items()
                   if a["logging"].get(n, [l[0], [], l[2], l[3]]) != l}
        if changed:
            out["logging"] = changed
        return out

    # what a ComfyUI process has imported already (their import-time effects are theirs, not ours)
    import diffusers, transformers, huggingface_hub, PIL.Image, scipy.optimize  # noqa: F401
    before_import = settings()
    import marigold
    changed = {"import": diff(before_import, settings())}
    cycle()  # cold: the load imports diffusers' UNet and VAE modules
    before = settings()
    cycle()  # warm: what every later run in the host does
    changed["cycle"] = diff(before, settings())
    stop.set()
    host.join()
    print(json.dumps({"seen": sorted(seen), "calls": calls, "changed": changed, "patches": foreign_patches()}))
""")


def test_load_predict_unload_leaves_the_host_process_as_found(depth_checkpoint):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(depth_checkpoint)], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["calls"] == [], f"process-wide setters called: {report['calls']}"
    # the host thread saw its own thread count, and only that, while we imported, loaded, ensembled and unloaded
    assert report["seen"] == [3], f"torch thread count seen by another thread: {report['seen']}"
    assert report["changed"] == {"import": {}, "cycle": {}}, f"process-wide settings changed: {report['changed']}"
    assert report["patches"] == [], f"our functions on other packages' classes: {report['patches']}"


def test_the_ensemble_solver_runs_single_threaded_without_touching_the_process_setting():
    # the speed the old torch.set_num_threads(1) bought (0.5 s against 3.6 s on 2 loaded cores), kept by a
    # worker thread of ours whose own OpenMP count is 1 (torch CPU wheels ship libgomp)
    import torch

    from marigold.core import ensemble

    before = torch.get_num_threads()
    worker = ensemble._single_thread_worker()
    assert worker is not None, "no OpenMP library found beside torch: the solver runs on the caller's thread"
    assert worker.submit(torch.get_num_threads).result() == 1
    assert torch.get_num_threads() == before
    members = torch.rand(3, 1, 16, 16)
    s, t, _ = ensemble.solve_alignment(members)
    assert s.shape == (3,) and s.dtype == torch.float64 and torch.get_num_threads() == before
