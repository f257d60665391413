"""Depth → 3D, seconds on this CPU: ``python -m bench.geometry [--size 1024] [--rounds 3] [--out DIR]``.

Times what a user waits for, from a depth map and its photo of ``--size`` pixels on the longest side (4:3):
the bas-relief at that resolution (``relief(resolution_px=size)``, the demo's other defaults) and its STL
and GLB files; the camera mesh (``depth_to_mesh``, one vertex per pixel) and its GLB; the point cloud and its
PLY; and trimesh's own checks of the relief (watertight, volume), which the library never runs itself.
Side by side, as the reference: the pixel grid's triangles built by a Python loop over the pixels (how the
demo's ``extrude.py`` builds them) against ``marigold.geometry.mesh.grid_faces`` (vectorised), same array out.
Medians of ``--rounds`` rounds in one process; the inputs are synthetic (a ramp, waves and a near box).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path


def inputs(size: int):
    import numpy as np

    h, w = size * 3 // 4, size
    yy, xx = np.mgrid[0:h, 0:w] / w
    depth = (0.5 * yy + 0.2 * np.sin(12 * xx) * np.cos(9 * yy) + 0.3).astype(np.float32)
    depth[h // 3: 2 * h // 3, w // 3: 2 * w // 3] = 0.05  # a near box: depth jumps for the mesh to cut
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return depth, photo


def loop_grid_faces(h: int, w: int):
    """The reference: two triangles per pixel square, appended pixel by pixel (same order as grid_faces)."""
    import numpy as np

    lower, upper = [], []
    for i in range(h - 1):
        for j in range(w - 1):
            a = i * w + j
            lower.append((a, a + w, a + w + 1))
            upper.append((a, a + w + 1, a + 1))
    return np.array(lower + upper, dtype=np.int64)


def timed(fn, rounds: int):
    times, out = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def run(size: int, rounds: int) -> dict:
    import numpy as np

    import marigold
    from marigold.geometry import mesh

    t0 = time.perf_counter()
    import trimesh  # noqa: F401  (imported lazily by the library: its cost is counted once, here)

    import_s = time.perf_counter() - t0
    depth, photo = inputs(size)
    h, w = depth.shape
    rows = {}

    def row(name, fn):
        med, all_, out = timed(fn, rounds)
        rows[name] = {"median_s": round(med, 3), "runs_s": [round(t, 3) for t in all_]}
        print(f"{name}: {med:.3f} s  {[round(t, 3) for t in all_]}", file=sys.stderr)
        return out

    solid = row(f"relief {w}×{h} px (build)", lambda: marigold.relief(depth, photo, resolution_px=size))
    row("relief → STL bytes", lambda: mesh.export_bytes(solid, "stl"))
    row("relief → GLB bytes (vertex colours)", lambda: mesh.export_bytes(solid, "glb"))
    row("trimesh checks of the relief (watertight, winding, volume)",
        lambda: (trimesh.Trimesh(solid.vertices, solid.faces, process=False).is_watertight,
                 solid.is_winding_consistent, solid.volume))
    surface = row(f"camera mesh {w}×{h} px (build)", lambda: marigold.depth_to_mesh(depth, photo))
    row("camera mesh → GLB bytes", lambda: mesh.export_bytes(surface, "glb"))
    cloud = row(f"point cloud {w}×{h} px (build)", lambda: marigold.depth_to_points(depth, photo))
    row("point cloud → PLY bytes", lambda: mesh.export_bytes(cloud, "ply"))

    vec_s, _, vec = timed(lambda: mesh.grid_faces(h, w), rounds)
    loop_s, _, ref = timed(lambda: loop_grid_faces(h, w), max(1, rounds // 2))
    assert np.array_equal(vec, ref), "the reference and grid_faces disagree"
    return {
        "size": [w, h], "rounds": rounds, "trimesh_import_s": round(import_s, 3), "rows": rows,
        "relief": {"vertices": len(solid.vertices), "faces": len(solid.faces),
                   "watertight": bool(solid.is_watertight), "extents_mm": [round(float(e), 3) for e in solid.extents]},
        "mesh": {"vertices": len(surface.vertices), "faces": len(surface.faces)},
        "grid_faces": {"vectorised_s": round(vec_s, 4), "python_loop_s": round(loop_s, 3),
                       "speed_up": round(loop_s / vec_s, 1)},
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def markdown(r: dict) -> str:
    w, h = r["size"]
    lines = [f"| depth → 3D, {w}×{h} depth map and photo (median of {r['rounds']}) | seconds |", "|---|---|"]
    lines += [f"| {name} | {v['median_s']:.2f} |" for name, v in r["rows"].items()]
    g = r["grid_faces"]
    lines += ["", f"Relief: {r['relief']['vertices']:,} vertices, {r['relief']['faces']:,} triangles, watertight: "
              f"{r['relief']['watertight']}, {r['relief']['extents_mm']} mm. Camera mesh: {r['mesh']['vertices']:,} "
              f"vertices, {r['mesh']['faces']:,} triangles. Peak RSS of the process {r['peak_rss_gb']} GB; "
              f"`import trimesh` {r['trimesh_import_s']:.2f} s (once).",
              "", "| pixel-grid triangles (reference side by side) | seconds | ratio |", "|---|---|---|",
              f"| Python loop over the pixels | {g['python_loop_s']:.3f} | 1 |",
              f"| `marigold.geometry.mesh.grid_faces` (vectorised) | {g['vectorised_s']:.4f} | **{g['speed_up']}× faster** |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.geometry", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024, help="longest side of the depth map (default 1024)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None, help="folder for geometry.json and geometry.md")
    args = ap.parse_args(argv)
    r = run(args.size, args.rounds)
    md = markdown(r)
    print(md)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "geometry.json").write_text(json.dumps(r, indent=1) + "\n")
        (out / "geometry.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
