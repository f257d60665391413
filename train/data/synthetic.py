"""A synthetic training set rendered on the CPU: rooms of textured planes, spheres and boxes, with exact depth.

Renderer: a vectorised numpy ray caster (we chose it over pybullet's TinyRenderer: no extra dependency, no
OpenGL context, bit-identical on every machine, and exact planar depth and normals for free). Textures are
real photographs that ship with scikit-image (``skimage.data``), mapped onto each surface by its own
coordinates, lit by one directional light plus ambient, so that texture gradient, perspective and shading all
carry depth cues.

Camera frame: x right, y down, z forward (depth = z, "planar" depth as Marigold uses). Normals are returned in
Marigold's convention (x right, y up, z towards the viewer), as unit vectors.

Scenes are indexed: scene ``i`` of a split is a pure function of ``(split seed, i)``, so ``train`` and
``heldout`` never share a scene, and any worker can render any scene.
"""

from __future__ import annotations

import functools

import numpy as np

from marigold.optional import require

from .common import DepthSample

TEXTURE_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera", "cat",
                 "immunohistochemistry", "coins", "moon", "hubble_deep_field", "colorwheel")
SPLIT_SEEDS = {"train": 0, "heldout": 1_000_003, "val": 2_000_003}


@functools.lru_cache(maxsize=1)
def textures() -> tuple[np.ndarray, ...]:
    """The scikit-image photographs as float32 RGB arrays in 0..1 (at most 256 px a side, to keep it light)."""
    sd = require("skimage.data", "train", "The synthetic scenes (scikit-image photographs as textures)")

    out = []
    for name in TEXTURE_NAMES:
        im = np.asarray(getattr(sd, name)(), dtype=np.float32)
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        im = im[..., :3]
        if im.max() > 1.5:
            im = im / 255.0
        step = max(1, max(im.shape[:2]) // 256)
        out.append(np.ascontiguousarray(im[::step, ::step]))
    return tuple(out)


def _lookup(tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Nearest texel at (u, v) in texture units (wrapping): [P] → [P,3]."""
    h, w = tex.shape[:2]
    iu = np.floor(u * w).astype(np.int64) % w
    iv = np.floor(v * h).astype(np.int64) % h
    return tex[iv, iu]


class _Scene:
    """Random room + objects drawn from one RNG; ``cast`` intersects rays with all of it."""

    def __init__(self, rng: np.random.Generator):
        n_tex = len(textures())
        self.floor_y = rng.uniform(0.9, 1.6)  # camera height above the floor
        self.back_z = rng.uniform(4.0, 9.0)
        self.side = [rng.uniform(1.5, 3.5) if rng.random() < 0.6 else None,  # left wall at x = -w
                     rng.uniform(1.5, 3.5) if rng.random() < 0.6 else None]  # right wall at x = +w
        self.ceil_y = -rng.uniform(1.2, 2.5) if rng.random() < 0.5 else None
        self.tex = rng.integers(0, n_tex, size=16)
        self.tex_scale = rng.uniform(0.3, 1.2, size=16)
        self.spheres = []
        for _ in range(int(rng.integers(1, 4))):
            r = rng.uniform(0.25, 0.8)
            z = rng.uniform(1.5, self.back_z - r - 0.2)
            x = rng.uniform(-1.2, 1.2) * z / 2.5
            self.spheres.append((np.array([x, self.floor_y - r, z]), r))
        self.boxes = []
        for _ in range(int(rng.integers(0, 3))):
            half = rng.uniform(0.2, 0.7, size=3)
            z = rng.uniform(1.5, self.back_z - half[2] - 0.2)
            x = rng.uniform(-1.2, 1.2) * z / 2.5
            c = np.array([x, self.floor_y - half[1], z])
            self.boxes.append((c - half, c + half))
        light = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-1.0, -0.4), rng.uniform(-0.8, -0.2)])
        self.light = light / np.linalg.norm(light)  # direction towards the light
        self.ambient = rng.uniform(0.25, 0.45)
        self.sky = rng.uniform(0.4, 0.9, size=3).astype(np.float32)

    def cast(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rays from the origin along ``d`` [P,3] → (t [P] (inf = miss), normal [P,3], colour [P,3])."""
        p = d.shape[0]
        t_best = np.full(p, np.inf)
        normal = np.zeros((p, 3))
        color = np.tile(self.sky, (p, 1)).astype(np.float64)
        tex = textures()

        def take(t, n, uv, k):
            hit = (t > 1e-6) & (t < t_best)
            if not hit.any():
                return
            t_best[hit] = t[hit]
            normal[hit] = n[hit] if n.ndim == 2 else n
            s = self.tex_scale[k]
            color[hit] = _lookup(tex[self.tex[k]], uv[0][hit] * s, uv[1][hit] * s)

        with np.errstate(divide="ignore", invalid="ignore"):
            # planes: floor (y = floor_y), ceiling, back wall (z), side walls (x)
            t = self.floor_y / d[:, 1]
            pts = d * t[:, None]
            take(t, np.array([0.0, -1.0, 0.0]), (pts[:, 0], pts[:, 2]), 0)
            if self.ceil_y is not None:
                t = self.ceil_y / d[:, 1]
                pts = d * t[:, None]
                take(t, np.array([0.0, 1.0, 0.0]), (pts[:, 0], pts[:, 2]), 1)
            t = self.back_z / d[:, 2]
            pts = d * t[:, None]
            take(t, np.array([0.0, 0.0, -1.0]), (pts[:, 0] / 2, pts[:, 1] / 2), 2)
            for k, (w, sign) in enumerate(zip(self.side, (-1.0, 1.0))):
                if w is None:
                    continue
                t = sign * w / d[:, 0]
                pts = d * t[:, None]
                take(t, np.array([-sign, 0.0, 0.0]), (pts[:, 2] / 2, pts[:, 1] / 2), 3 + k)
            # spheres: |t d - c|² = r²
            for k, (c, r) in enumerate(self.spheres):
                b = d @ c
                disc = b * b - (c @ c - r * r) * (d * d).sum(1)
                dd = (d * d).sum(1)
                t = np.where(disc >= 0, (b - np.sqrt(np.maximum(disc, 0))) / dd, np.inf)
                pts = d * t[:, None]
                n = (pts - c) / r
                u = np.arctan2(n[:, 0], -n[:, 2]) / (2 * np.pi) + 0.5
                v = np.arccos(np.clip(n[:, 1], -1, 1)) / np.pi
                take(t, n, (u * 2, v), 6 + k)
            # boxes: slab method
            for k, (lo, hi) in enumerate(self.boxes):
                t1, t2 = lo / d, hi / d
                tmin = np.minimum(t1, t2)
                tmax = np.maximum(t1, t2)
                tn = tmin.max(1)
                tf = tmax.min(1)
                t = np.where((tn <= tf) & (tn > 0), tn, np.inf)
                axis = tmin.argmax(1)
                n = np.zeros((p, 3))
                n[np.arange(p), axis] = -np.sign(d[np.arange(p), axis])
                pts = d * t[:, None]
                uv_a = np.where(axis == 0, pts[:, 2], pts[:, 0])
                uv_b = np.where(axis == 1, pts[:, 2], pts[:, 1])
                take(t, n, (uv_a, uv_b), 10 + k)
        shade = self.ambient + (1 - self.ambient) * np.clip(normal @ self.light, 0, None)
        hit = np.isfinite(t_best)
        color[hit] *= shade[hit, None]
        return t_best, normal, color


def render(seed: int, height: int, width: int, supersample: int = 2, objects: bool = True) -> DepthSample:
    """Render scene ``seed`` at ``height × width``: RGB 0..1, planar depth (inf where the sky is), normals.
    ``objects=False`` leaves only the room (for geometry tests)."""
    rng = np.random.default_rng(seed)
    scene = _Scene(rng)
    if not objects:
        scene.spheres, scene.boxes = [], []
    fov = np.deg2rad(rng.uniform(50, 70))
    s = supersample
    hh, ww = height * s, width * s
    f = 0.5 * ww / np.tan(fov / 2)
    ys, xs = np.mgrid[0:hh, 0:ww].astype(np.float64)
    pitch = rng.uniform(-0.15, 0.15)  # look slightly up or down
    d = np.stack([(xs + 0.5 - ww / 2) / f, (ys + 0.5 - hh / 2) / f, np.ones_like(xs)], -1).reshape(-1, 3)
    cp, sp = np.cos(pitch), np.sin(pitch)
    rot = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    d_world = d @ rot.T
    t, n_world, color = scene.cast(d_world)
    depth = t  # planar depth along the camera axis: the camera-frame z of t·d is t, since d has z = 1
    n_cam = n_world @ rot  # back to the camera frame
    rgb = color.reshape(hh, ww, 3)
    depth = depth.reshape(hh, ww)
    n_cam = n_cam.reshape(hh, ww, 3)
    if s > 1:  # box-filter the colour; take the centre sample for depth and normals (exact, no mixed edges)
        rgb = rgb.reshape(height, s, width, s, 3).mean(axis=(1, 3))
        depth = depth[s // 2::s, s // 2::s]
        n_cam = n_cam[s // 2::s, s // 2::s]
    normals = np.stack([n_cam[..., 0], -n_cam[..., 1], -n_cam[..., 2]], -1)  # Marigold: x right, y up, z to viewer
    depth = depth.astype(np.float32)
    valid = np.isfinite(depth)
    return DepthSample(rgb=np.clip(rgb, 0, 1).astype(np.float32), depth=np.where(valid, depth, 0).astype(np.float32),
                       valid=valid, normals=normals.astype(np.float32), name=f"synthetic_{seed}")


class SyntheticDataset:
    """``size`` scenes of one split, rendered on demand at ``height × width``."""

    def __init__(self, size: int = 1000, height: int = 96, width: int = 128, split: str = "train"):
        if split not in SPLIT_SEEDS:
            raise ValueError(f"synthetic split must be one of {', '.join(SPLIT_SEEDS)}; got {split!r}.")
        self.size, self.height, self.width, self.split = int(size), int(height), int(width), split
        self.native_size = (self.height, self.width)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> DepthSample:
        if not 0 <= i < self.size:
            raise IndexError(i)
        return render(SPLIT_SEEDS[self.split] + i, self.height, self.width)
