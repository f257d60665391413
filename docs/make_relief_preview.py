"""Draws docs/relief_preview.png: a bas-relief of a synthetic scene, seen from above at an angle.

``python docs/make_relief_preview.py`` (from the repository root). The scene is made here with exact depth
(a ball and a box in front of a wall, on a checkered floor), because no real Marigold weights are available
on the machines this project is built on; the relief is ``marigold.relief`` with the demo's defaults. The
picture is an orthographic z-buffer of points sampled on the surface (numpy only), lit by one light.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def scene(h: int = 300, w: int = 400):
    """Depth (0 = near) and colours of a small room: back wall, floor, a ball, a box."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = xx / w, yy / h
    depth = np.full((h, w), 1.0)
    rgb = np.stack([0.75 + 0.1 * u, 0.72 + 0.0 * u, 0.62 + 0.1 * v], -1)  # a warm wall
    floor = v > 0.55
    fd = 1.0 - (v - 0.55) / 0.45 * 0.75  # the floor comes nearer towards the bottom
    depth[floor] = fd[floor]
    check = ((xx // 40 + yy // 25) % 2 == 0)[floor]
    rgb[floor] = np.where(check[:, None], [0.55, 0.38, 0.25], [0.8, 0.65, 0.45])
    cx, cy, r = 0.33 * w, 0.58 * h, 0.2 * h  # a ball
    d2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / r ** 2
    ball = d2 < 1
    depth[ball] = 0.35 - 0.2 * np.sqrt(1 - d2[ball])
    rgb[ball] = np.stack([0.85 - 0.3 * d2[ball], 0.2 + 0.1 * d2[ball], 0.2 + 0 * d2[ball]], -1)
    box = (xx > 0.6 * w) & (xx < 0.85 * w) & (yy > 0.35 * h) & (yy < 0.8 * h)
    depth[box] = 0.45 + 0.15 * (xx[box] - 0.6 * w) / (0.25 * w)
    rgb[box] = [0.25, 0.45, 0.75]
    return depth.astype(np.float32), np.clip(rgb, 0, 1).astype(np.float32)


def render(mesh, size=(640, 440), elevation=50.0, azimuth=-25.0, samples=2_500_000) -> np.ndarray:
    import trimesh

    pts, face = trimesh.sample.sample_surface(mesh, samples, seed=0)
    colors = np.asarray(mesh.visual.face_colors)[face, :3] / 255.0  # [P,3]
    normals = np.asarray(mesh.face_normals)[face]  # [P,3]
    el, az = np.radians(elevation), np.radians(azimuth)
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(el - np.pi / 2), -np.sin(el - np.pi / 2)],
                   [0, np.sin(el - np.pi / 2), np.cos(el - np.pi / 2)]])
    rot = rx @ rz  # world → view: x right, y up, z towards the viewer
    p = (pts - mesh.bounds.mean(0)) @ rot.T
    n = normals @ rot.T
    light = np.array([-0.4, 0.6, 0.7]) / np.linalg.norm([-0.4, 0.6, 0.7])
    shade = 0.3 + 0.7 * np.clip(n @ light, 0, 1)
    w, h = size
    scale = 0.92 * min(w / np.ptp(p[:, 0]), h / np.ptp(p[:, 1]))
    px = np.round(p[:, 0] * scale + w / 2).astype(int)
    py = np.round(h / 2 - p[:, 1] * scale).astype(int)
    ok = (px >= 0) & (px < w) & (py >= 0) & (py < h)
    px, py, z, c = px[ok], py[ok], p[ok, 2], (colors * shade[:, None])[ok]
    order = np.argsort(z)  # far first: later (nearer) points overwrite
    img = np.ones((h, w, 3))
    img[py[order], px[order]] = c[order]
    return (img * 255 + 0.5).astype(np.uint8)


def main() -> None:
    from marigold.geometry.relief import relief

    depth, rgb = scene()
    solid = relief(depth, rgb, resolution_px=400)
    assert solid.is_watertight and solid.volume > 0
    img = render(solid)
    out = ROOT / "docs" / "relief_preview.png"
    Image.fromarray(img).quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    Image.fromarray((np.concatenate([rgb, np.repeat(depth[..., None], 3, -1)], 1) * 255).astype(np.uint8)).save(
        Path("/tmp") / "relief_preview_input.png")  # what went in, to compare by eye
    print(out, out.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
