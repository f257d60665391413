"""A synthetic training set rendered on the CPU: rooms of textured planes, spheres and boxes, with exact depth.

Renderer: a vectorised numpy ray caster (we chose it over pybullet's TinyRenderer: no extra dependency, no
OpenGL context, bit-identical on every machine, and exact planar depth and normals for free). Textures are
real photographs that ship with scikit-image (``skimage.data``), mapped onto each surface by its own
coordinates, lit by one directional light plus ambient, so that texture gradient, perspective and shading all
carry depth cues.

Camera frame: x right, y down, z forward (depth = z, "planar" depth as Marigold uses). Normals are returned in
Marigold's convention (x right, y up, z towards the viewer), as unit vectors.

Intrinsic images (``render(..., materials=True)``): every surface also gets a roughness and a metallicity, and
the renderer returns exact albedo (the surface's base colour, InteriorVerse's albedo), its diffuse reflectance
(the base colour times 1 − metallicity: a metal has no diffuse term; Hypersim's ``diffuse_reflectance``, what the
lighting model calls albedo, given as ``targets["iid-lighting/albedo"]``), diffuse shading (ambient + Lambert,
white light), a non-diffuse residual and the material map (roughness, metallicity, 0), so that ``rgb = diffuse
reflectance · shading + residual`` at every pixel centre (before the supersampled colour is box-filtered and
clipped to 0..1). The residual is what a metallic-workflow renderer adds to the diffuse term: F0 = 0.04 for
dielectrics and the base colour for metals, times a Blinn-Phong highlight whose sharpness follows the roughness,
plus the environment (the sky's colour, brighter above, with stripes that rough surfaces blur) seen in the mirror
direction through Schlick's Fresnel with a roughness term. The environment term is what makes the material
visible away from the highlight, as it is in real renders: a metal plane mirrors a gradient that moves with the
view while its Lambert shading is flat, smooth dielectrics brighten at grazing angles, and the sharper the
mirrored stripes, the smoother the surface. ``MATERIALS_VERSION`` 1, the highlight alone, left metallicity
unseen outside a few pixels (a model trained on it did no better than the training set's mean map); version 2, a
plain gradient environment, showed the roughness only in the highlight and at grazing angles; version 3 kept a
metal's diffuse term, so a metal looked like a painted surface with a tinted sheen (models read little
metallicity from it).
Without ``materials`` the image is what it always was (no highlight), so depth and normals runs see the same
pictures as before; the material draws come from their own RNG stream, so no scene changes either way.

Scenes are indexed: scene ``i`` of a split is a pure function of ``(split seed, i)``, so ``train`` and
``heldout`` never share a scene, and any worker can render any scene.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from marigold.optional import require

from .common import DepthSample

TEXTURE_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera", "cat",
                 "immunohistochemistry", "coins", "moon", "hubble_deep_field", "colorwheel")
SPLIT_SEEDS = {"train": 0, "heldout": 1_000_003, "val": 2_000_003}
# what the intrinsic layers and the images rendered with ``materials`` look like; caches of models trained on
# them (bench.quality) are keyed on it
MATERIALS_VERSION = 4
ENV_STRENGTH = 0.5  # the environment's radiance against the directional light's (1)
# the environment's panels: (frequency per radian, blur per unit of roughness) of the stripes across elevation and
# across azimuth; fine stripes tell the smooth half of the roughness range apart, coarse ones the rough half
ENV_STRIPES = ((24.0, 0.25), (8.0, 0.35))
ENV_CONTRAST = 0.6
TEXTURES = ("photo", "flat")
# ``texture="flat"``: each surface gets one colour of this fixed palette instead of its photograph (same scene
# geometry, lighting and RNG stream). Photographs at random scales camouflage the geometry at 48×64: a 1M-parameter
# model (or a plain CNN on the pixels) trained for a few hundred CPU steps does not beat the best constant map on
# them, and the tiny VAE cannot encode them (train/README.md, "tiny models"); flat surfaces leave shading,
# silhouettes and occlusions as the depth cues, which tiny models learn in minutes.
FLAT_PALETTE = np.random.default_rng(7).uniform(0.2, 1.0, (len(TEXTURE_NAMES), 3))


def check_texture(texture: str) -> str:
    if texture not in TEXTURES:
        raise ValueError(f"synthetic texture must be one of {', '.join(TEXTURES)}; got {texture!r}.")
    return texture


WIDE_FOV = (50.0, 70.0)  # degrees: the whole-room camera's horizontal field of view, drawn uniformly
FOV_STREAM = 36  # the ``fov`` option draws from ``default_rng([seed, FOV_STREAM])``: the scene's stream is untouched


def check_fov(fov) -> tuple[float, float] | None:
    """``None`` (the whole-room camera only) or ``[lo, hi]`` degrees, 1 <= lo <= hi <= 120 → a float pair."""
    if fov is None:
        return None
    try:
        lo, hi = (float(v) for v in fov)
    except (TypeError, ValueError):
        raise ValueError(f"synthetic fov must be [low, high] in degrees, e.g. [6, 70]; got {fov!r}.") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 1.0 <= lo <= hi <= 120.0):
        raise ValueError(f"synthetic fov must satisfy 1 <= low <= high <= 120 degrees; got {fov!r}.")
    return lo, hi


def _narrow_view(seed: int, wide: float, fov: tuple[float, float], aspect: float, crop: bool
                 ) -> tuple[float, np.ndarray]:
    """The ``fov`` option's camera for scene ``seed``: (horizontal field of view in radians, drawn log-uniformly
    from ``fov`` degrees, so that every octave of zoom is as common; the ``[3,3]`` rotation from it to the
    whole-room camera of field of view ``wide``). ``crop``: it turns (yaw and pitch, no roll) towards a random
    part of the whole-room view, by at most the difference of the two views' half-angles across and up or down,
    so it stays about inside that view (as a tile of a big photo sees part of it; a turned camera's corners
    reach a little beyond; a camera as wide or wider stays centred); otherwise it looks where the whole-room
    camera does. ``aspect``: height / width."""
    r = np.random.default_rng([seed, FOV_STREAM])
    lo, hi = np.log(np.deg2rad(fov))
    narrow = float(np.exp(r.uniform(lo, hi)))
    # half-angles (radians) across and up/down of the wide and the narrow view: how far the narrow one may turn
    half = [(wide / 2, narrow / 2), (np.arctan(np.tan(wide / 2) * aspect), np.arctan(np.tan(narrow / 2) * aspect))]
    yaw, pitch = r.uniform(-1, 1, size=2) * [max(w - n, 0.0) for w, n in half]  # drawn either way: same fov
    return narrow, rotation(yaw, pitch, 0.0) if crop else np.eye(3)  # no roll: its x axis stays level


def _fov_of(rng: np.random.Generator, seed: int, fov: tuple[float, float] | None) -> float:
    """The horizontal field of view (radians) of scene ``seed``'s camera, after the scene's draws from ``rng``."""
    wide = np.deg2rad(rng.uniform(*WIDE_FOV))
    return wide if fov is None else _narrow_view(seed, wide, fov, 1.0, False)[0]


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


# Per-surface labels (text-grounded segmentation trains on them as prompts): surface ids of _Scene.cast (0 floor,
# 1 ceiling, 2 back wall, 3-4 side walls, 6-9 spheres, 10-15 boxes) → an index into SURFACE_LABELS; -1: the sky.
SURFACE_LABELS = ("floor", "ceiling", "wall", "ball", "box")
SURFACE_OF_ID = np.array([0, 1, 2, 2, 2, -1] + [3] * 4 + [4] * 6 + [-1], dtype=np.int8)  # index -1 (no hit) → -1


def _environment(mirror: np.ndarray, rough: np.ndarray) -> np.ndarray:
    """The environment's brightness seen along the unit directions ``mirror`` [P,3] (world y down) by surfaces
    of roughness ``rough`` [P]: brighter above, with stripes across elevation and azimuth (panels, window bars)
    blurred by the roughness. A rough surface reflects the environment averaged over a lobe; for a stripe
    cos(k·θ) under a Gaussian lobe of width σ that average is exp(-(k·σ)²/2)·cos(k·θ), exactly, so no rays
    are shot. Smooth surfaces mirror the stripes sharply and rough ones show their mean: the cue by which people
    judge gloss in real scenes (Fleming, Dror and Adelson 2003) and what makes roughness visible away from the
    highlight."""
    up = np.clip(-mirror[:, 1], -1, 1)  # [P]
    angles = (np.arcsin(up), np.arctan2(mirror[:, 0], mirror[:, 2]))  # elevation, azimuth [P] each
    stripes = sum(np.exp(-0.5 * (k * blur * rough) ** 2) * np.cos(k * a)
                  for a, (k, blur) in zip(angles, ENV_STRIPES)) / len(ENV_STRIPES)  # [P] in [-1, 1]
    return (0.3 + 0.7 * np.clip(0.5 + 0.5 * up, 0, 1)) * (1 + ENV_CONTRAST * stripes)


class _Scene:
    """Random room + objects drawn from one RNG; ``cast`` intersects rays with all of it."""

    def __init__(self, rng: np.random.Generator, texture: str = "photo"):
        self.flat = check_texture(texture) == "flat"
        n_tex = len(TEXTURE_NAMES)
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
        # per-surface materials from a stream of their own (keyed on this scene's draws): the scene RNG, which
        # render() goes on using for the camera, is not advanced, so every existing scene stays as it was
        key = np.frombuffer(np.array([self.floor_y, self.back_z, self.ambient]).tobytes(), np.uint32)
        mat = np.random.default_rng(key)
        self.roughness = mat.uniform(0.05, 0.9, size=16)
        self.metallic = (mat.random(16) < 0.3) * mat.uniform(0.6, 1.0, size=16)  # a few surfaces are metal
        self.materials = False  # render the highlight into the image (render(materials=True))

    def add_fine(self, rng: np.random.Generator) -> None:
        """Fine structure (``render(..., fine=True)``): 3-6 thin poles (1.6-6 cm across) standing on the floor,
        1-3 thin rails (a shelf's edge, 3-5 cm thick) and 8-16 small balls (4-12 cm radius) on the floor: detail
        a 128-px view resolves only partly, for the tiled bench (bench/quality.py, ``tiles``)."""
        def spot(margin: float) -> tuple[float, float]:
            z = rng.uniform(1.2, self.back_z - margin - 0.2)
            return rng.uniform(-1.3, 1.3) * z / 2.5, z

        for _ in range(int(rng.integers(3, 7))):  # poles: floor to 0.8-2.2 m up (or the ceiling)
            x, z = spot(0.1)
            half = rng.uniform(0.008, 0.03, size=2)
            top = max(self.floor_y - rng.uniform(0.8, 2.2), self.ceil_y if self.ceil_y is not None else -np.inf)
            self.boxes.append((np.array([x - half[0], top, z - half[1]]),
                               np.array([x + half[0], self.floor_y, z + half[1]])))
        for _ in range(int(rng.integers(1, 4))):  # rails: 0.4-1.4 m long, 0.3-1.2 m above the floor
            x, z = spot(0.1)
            length, y = rng.uniform(0.2, 0.7), self.floor_y - rng.uniform(0.3, 1.2)
            t = rng.uniform(0.015, 0.025)
            self.boxes.append((np.array([x - length, y - t, z - 0.05]), np.array([x + length, y + t, z + 0.05])))
        for _ in range(int(rng.integers(8, 17))):  # small balls on the floor
            r = rng.uniform(0.04, 0.12)
            x, z = spot(r)
            self.spheres.append((np.array([x, self.floor_y - r, z]), r))

    def cast(self, d: np.ndarray, origin: np.ndarray | None = None, layers: dict | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rays from ``origin`` (default: the world origin) along ``d`` [P,3] → (t [P] (inf = miss),
        normal [P,3], colour [P,3]); the hit point is ``origin + t·d``. ``layers``: a dict filled with the
        intrinsic layers (albedo, shading, residual, material, each [P,3])."""
        p = d.shape[0]
        surface = np.full(p, -1)  # which surface each ray hit (-1: sky)
        o = np.zeros(3) if origin is None else np.asarray(origin, np.float64)
        t_best = np.full(p, np.inf)
        normal = np.zeros((p, 3))
        color = np.tile(self.sky, (p, 1)).astype(np.float64)
        tex = None if self.flat else textures()

        def take(t, n, uv, k):
            hit = (t > 1e-6) & (t < t_best)
            if not hit.any():
                return
            t_best[hit] = t[hit]
            surface[hit] = k
            normal[hit] = n[hit] if n.ndim == 2 else n
            if self.flat:
                color[hit] = FLAT_PALETTE[self.tex[k]]
                return
            s = self.tex_scale[k]
            color[hit] = _lookup(tex[self.tex[k]], uv[0][hit] * s, uv[1][hit] * s)

        with np.errstate(divide="ignore", invalid="ignore"):
            # planes: floor (y = floor_y), ceiling, back wall (z), side walls (x)
            t = (self.floor_y - o[1]) / d[:, 1]
            pts = o + d * t[:, None]
            take(t, np.array([0.0, -1.0, 0.0]), (pts[:, 0], pts[:, 2]), 0)
            if self.ceil_y is not None:
                t = (self.ceil_y - o[1]) / d[:, 1]
                pts = o + d * t[:, None]
                take(t, np.array([0.0, 1.0, 0.0]), (pts[:, 0], pts[:, 2]), 1)
            t = (self.back_z - o[2]) / d[:, 2]
            pts = o + d * t[:, None]
            take(t, np.array([0.0, 0.0, -1.0]), (pts[:, 0] / 2, pts[:, 1] / 2), 2)
            for k, (w, sign) in enumerate(zip(self.side, (-1.0, 1.0))):
                if w is None:
                    continue
                t = (sign * w - o[0]) / d[:, 0]
                pts = o + d * t[:, None]
                take(t, np.array([-sign, 0.0, 0.0]), (pts[:, 2] / 2, pts[:, 1] / 2), 3 + k)
            # spheres: |o + t d - c|² = r²
            for k, (c_world, r) in enumerate(self.spheres):
                c = c_world - o
                b = d @ c
                disc = b * b - (c @ c - r * r) * (d * d).sum(1)
                dd = (d * d).sum(1)
                t = np.where(disc >= 0, (b - np.sqrt(np.maximum(disc, 0))) / dd, np.inf)
                pts = d * t[:, None]  # relative to the ray origin
                n = (pts - c) / r
                u = np.arctan2(n[:, 0], -n[:, 2]) / (2 * np.pi) + 0.5
                v = np.arccos(np.clip(n[:, 1], -1, 1)) / np.pi
                take(t, n, (u * 2, v), 6 + k % 4)  # the fine scenes' many objects share the 4 ids
            # boxes: slab method
            for k, (lo, hi) in enumerate(self.boxes):
                t1, t2 = (lo - o) / d, (hi - o) / d
                tmin = np.minimum(t1, t2)
                tmax = np.maximum(t1, t2)
                tn = tmin.max(1)
                tf = tmax.min(1)
                t = np.where((tn <= tf) & (tn > 0), tn, np.inf)
                axis = tmin.argmax(1)
                n = np.zeros((p, 3))
                n[np.arange(p), axis] = -np.sign(d[np.arange(p), axis])
                pts = o + d * t[:, None]
                uv_a = np.where(axis == 0, pts[:, 2], pts[:, 0])
                uv_b = np.where(axis == 1, pts[:, 2], pts[:, 1])
                take(t, n, (uv_a, uv_b), 10 + k % 6)
        shade = self.ambient + (1 - self.ambient) * np.clip(normal @ self.light, 0, None)
        hit = np.isfinite(t_best)
        albedo = color.copy()
        color[hit] *= shade[hit, None]
        if layers is not None:  # which labelled surface each ray hit (see SURFACE_LABELS); -1: the sky
            layers["surface"] = SURFACE_OF_ID[surface]
        if layers is None and not self.materials:
            return t_best, normal, color
        residual = np.zeros((p, 3))
        rough = np.where(hit, self.roughness[surface], 0.0)  # [P]
        metal = np.where(hit, self.metallic[surface], 0.0)  # [P]
        view = -d / np.linalg.norm(d, axis=1, keepdims=True)  # towards the camera
        half = view + self.light
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-9)
        lit = (normal @ self.light > 0) & hit
        power = 2.0 / np.maximum(rough, 0.05) ** 2  # Blinn-Phong exponent of the roughness
        spec = np.where(lit, np.clip((normal * half).sum(1), 0, 1) ** power * (power + 2) / 8, 0.0)
        f0 = 0.04 * (1 - metal)[:, None] + albedo * metal[:, None]  # [P,3]
        # the environment seen in the mirror direction (the sky's colour, brighter above: world y is down),
        # weighted by Schlick's Fresnel with a roughness term (smooth surfaces mirror more at grazing angles)
        cos_v = np.clip((normal * view).sum(1), 0, 1)  # [P]
        mirror = 2 * cos_v[:, None] * normal - view  # [P,3] the reflected view ray
        env = ENV_STRENGTH * self.sky[None] * _environment(mirror, rough)[:, None]  # [P,3]
        fresnel = f0 + (np.maximum((1 - rough)[:, None], f0) - f0) * ((1 - cos_v) ** 5)[:, None]  # [P,3]
        residual = f0 * spec[:, None] * (1 - self.ambient) + np.where(hit[:, None], fresnel * env, 0.0)
        residual = np.minimum(residual, 1.0)
        scatter = (1 - metal)[:, None]  # [P,1] a metal reflects, it does not scatter: no diffuse term
        if self.materials:
            color = color * scatter + residual
        if layers is not None:
            layers["albedo"] = albedo
            layers["iid-lighting/albedo"] = albedo * scatter  # the diffuse reflectance
            layers["shading"] = np.where(hit, shade, 1.0)[:, None].repeat(3, 1)  # the sky: its colour, unlit
            layers["residual"] = residual
            layers["material"] = np.stack([rough, metal, np.zeros(p)], 1)
        return t_best, normal, color


def _shoot(scene: _Scene, height: int, width: int, supersample: int, f: float, rot: np.ndarray,
           origin: np.ndarray | None = None, shift_px: float = 0.0, layers: dict | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``scene`` from a camera at ``origin`` with camera-to-world rotation ``rot`` and focal ``f``
    (supersampled pixels) → (rgb [H,W,3], planar depth [H,W] (inf = sky), camera-frame normals [H,W,3]).
    ``shift_px``: the picture moves this many output pixels to the right (a shifted sensor, as a converged
    stereo rig's)."""
    s = supersample
    hh, ww = height * s, width * s
    ys, xs = np.mgrid[0:hh, 0:ww].astype(np.float64)
    d = np.stack([(xs + 0.5 - ww / 2 - shift_px * s) / f, (ys + 0.5 - hh / 2) / f, np.ones_like(xs)], -1).reshape(-1, 3)
    d_world = d @ rot.T
    t, n_world, color = scene.cast(d_world, origin, layers)
    depth = t  # planar depth along the camera axis: the camera-frame z of t·d is t, since d has z = 1
    n_cam = n_world @ rot  # back to the camera frame
    rgb = color.reshape(hh, ww, 3)
    depth = depth.reshape(hh, ww)
    n_cam = n_cam.reshape(hh, ww, 3)
    if s > 1:  # box-filter the colour; take the centre sample for depth and normals (exact, no mixed edges)
        rgb = rgb.reshape(height, s, width, s, 3).mean(axis=(1, 3))
        depth = depth[s // 2::s, s // 2::s]
        n_cam = n_cam[s // 2::s, s // 2::s]
    if layers is not None:  # centre samples, like depth: exact per pixel
        for k in list(layers):
            if k == "surface":  # integer labels [H,W]
                layers[k] = layers[k].reshape(hh, ww)[s // 2::s, s // 2::s].astype(np.int8)
                continue
            layers[k] = layers[k].reshape(hh, ww, 3)[s // 2::s, s // 2::s].astype(np.float32)
    return rgb, depth, n_cam


def _sample(rgb: np.ndarray, depth: np.ndarray, n_cam: np.ndarray, name: str) -> DepthSample:
    normals = np.stack([n_cam[..., 0], -n_cam[..., 1], -n_cam[..., 2]], -1)  # Marigold: x right, y up, z to viewer
    depth = depth.astype(np.float32)
    valid = np.isfinite(depth)
    return DepthSample(rgb=np.clip(rgb, 0, 1).astype(np.float32), depth=np.where(valid, depth, 0).astype(np.float32),
                       valid=valid, normals=normals.astype(np.float32), name=name)


def render(seed: int, height: int, width: int, supersample: int = 2, objects: bool = True,
           texture: str = "photo", camera_x: float = 0.0, shift_px: float = 0.0, materials: bool = False,
           fine: bool = False, fov: tuple[float, float] | None = None, crop: bool = True) -> DepthSample:
    """Render scene ``seed`` at ``height × width``: RGB 0..1, planar depth (inf where the sky is), normals, and
    the intrinsic layers in ``targets`` (albedo, shading, residual, material; see the module docstring).
    ``objects=False`` leaves only the room (for geometry tests); ``texture="flat"``: see :data:`FLAT_PALETTE`;
    ``materials``: the image shows the specular highlight too (what intrinsics models train on).
    ``camera_x`` moves the camera sideways (metres, along its own x axis) and ``shift_px`` its sensor (the
    picture moves right by that many pixels): the second camera of a stereo pair (see :func:`focal_px`).
    ``fine``: the same room, camera and objects plus fine structure (:meth:`_Scene.add_fine`), drawn from a
    stream of its own. ``fov``: ``[lo, hi]`` degrees: the same room and objects seen by a camera whose horizontal
    field of view is drawn log-uniformly from that range (its own stream), rendered directly at ``height ×
    width`` (no crop and resize), looking at a random part of the whole-room view (``crop``) or at its centre; a
    narrow one sees what a tile of a big photo sees. Without ``fov`` every scene is exactly what it always was."""
    fov = check_fov(fov)
    rng = np.random.default_rng(seed)
    scene = _Scene(rng, texture)
    scene.materials = materials
    if not objects:
        scene.spheres, scene.boxes = [], []
    if fine:
        scene.add_fine(np.random.default_rng([seed, 35]))
    view = np.deg2rad(rng.uniform(*WIDE_FOV))  # the whole-room camera (drawn with or without ``fov``)
    pitch = rng.uniform(-0.15, 0.15)  # look slightly up or down
    cp, sp = np.cos(pitch), np.sin(pitch)
    rot = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    if fov is not None:  # a camera at the same spot, zoomed and turned towards part of the whole-room view
        view, aim = _narrow_view(seed, view, fov, height / width, crop)
        rot = rot @ aim
    f = 0.5 * width * supersample / np.tan(view / 2)
    origin = rot @ np.array([camera_x, 0.0, 0.0])  # the camera's own x axis, in the world
    layers: dict = {}
    sample = _sample(*_shoot(scene, height, width, supersample, f, rot, origin, shift_px, layers=layers),
                     name=f"synthetic_{seed}")
    sample.labels = layers.pop("surface")  # [H,W] index into SURFACE_LABELS, -1 = sky
    sample.targets = {k: np.clip(v, 0.0, 1.0) for k, v in layers.items()}
    sample.targets["normals"] = sample.normals
    return sample


def focal_px(seed: int, width: int, fov: tuple[float, float] | None = None) -> float:
    """The focal length of scene ``seed``'s camera in output pixels at ``width`` (what :func:`render` uses, with
    the same ``fov``): a point at depth Z moves ``focal_px · b / Z`` pixels left when the camera moves ``b``
    metres right."""
    rng = np.random.default_rng(seed)
    _Scene(rng)  # the scene draws first, then the field of view
    return 0.5 * width / np.tan(_fov_of(rng, seed, check_fov(fov)) / 2)


# ---------------------------------------------------------------------------------------------------------------
# Videos: a camera moving smoothly through one scene


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation (camera x right, y down, z forward): yaw about y, then pitch about x, then
    roll about z, applied to camera-frame directions."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


@dataclass
class CameraPath:
    """A smooth path: translation and rotation as functions of s = frame / (frames - 1) in [0, 1]. The camera
    stays in front of every object (z <= 0.5 m; objects start at z >= 0.7 m) and between the walls."""

    forward: float  # metres travelled along z
    lateral: float  # metres travelled along x (signed)
    bob: float  # vertical sway amplitude (m)
    yaw0: float
    yaw1: float
    pitch0: float
    pitch_amp: float
    roll_amp: float
    phase: float
    z0: float = 0.0  # start depth of the camera (negative: behind the room's origin, where nothing stands)

    @classmethod
    def random(cls, rng: np.random.Generator) -> "CameraPath":
        return cls(forward=rng.uniform(0.15, 0.5), lateral=rng.uniform(-0.45, 0.45), bob=rng.uniform(-0.08, 0.08),
                   yaw0=rng.uniform(-0.3, 0.3), yaw1=rng.uniform(-0.3, 0.3), pitch0=rng.uniform(-0.12, 0.12),
                   pitch_amp=rng.uniform(0.0, 0.06), roll_amp=rng.uniform(-0.05, 0.05),
                   phase=rng.uniform(0, 2 * np.pi))

    @classmethod
    def dolly(cls, rng: np.random.Generator) -> "CameraPath":
        """A long dolly (2-3.5 m along z, in or out at random) behind the objects (z <= 0), so the visible depth
        range changes over the clip (far wall and objects recede or approach): what makes per-frame
        normalisation flicker. The room has no front wall, so the camera never leaves it."""
        d = rng.uniform(2.0, 3.5)
        out = rng.random() < 0.5
        return cls(forward=-d if out else d, lateral=rng.uniform(-0.3, 0.3), bob=rng.uniform(-0.05, 0.05),
                   yaw0=rng.uniform(-0.15, 0.15), yaw1=rng.uniform(-0.15, 0.15), pitch0=rng.uniform(-0.1, 0.1),
                   pitch_amp=rng.uniform(0.0, 0.04), roll_amp=rng.uniform(-0.03, 0.03),
                   phase=rng.uniform(0, 2 * np.pi), z0=0.0 if out else -d)

    def pose(self, s: float) -> np.ndarray:
        """Camera-to-world ``[4,4]`` at ``s`` in [0, 1]."""
        ease = 3 * s * s - 2 * s * s * s  # smoothstep: starts and stops gently
        centre = np.array([self.lateral * (ease - 0.5) * 2 * 0.5, self.bob * np.sin(2 * np.pi * s + self.phase),
                           self.z0 + self.forward * ease])
        rot = rotation(self.yaw0 + (self.yaw1 - self.yaw0) * ease,
                       self.pitch0 + self.pitch_amp * np.sin(2 * np.pi * s + self.phase),
                       self.roll_amp * np.sin(np.pi * s))
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = rot, centre
        return out


@dataclass
class VideoClip:
    """Frames of one video with exact depth, intrinsics and poses."""

    rgb: np.ndarray  # [T,H,W,3] float32 0..1
    depth: np.ndarray  # [T,H,W] float32 planar depth (0 where invalid)
    valid: np.ndarray  # [T,H,W] bool
    intrinsics: np.ndarray | None = None  # [3,3]: pixel index u = fx·X/Z + cx (u = 0 is the first pixel)
    poses: np.ndarray | None = None  # [T,4,4] camera-to-world (camera x right, y down, z forward)
    name: str = ""
    moving: np.ndarray | None = None  # [T,H,W] bool: pixels of an object that moves on its own (``moving=True``)
    motion: np.ndarray | None = None  # [T,3] that object's world displacement from frame k to k+1 (last: 0)


CAMERA_PATHS = ("random", "dolly")  # CameraPath constructors: "random" (default) and "dolly"


class _VideoScene:
    """Scene, field of view and camera path of video ``seed``: a pure function of the seed.

    ``moving``: a ball that moves on its own rolls across the view along the floor (from its own RNG stream, so the
    room and the camera path stay those of the clip without it). It slides: its texture moves with it, without
    spinning; the geometry of a sphere is the same either way."""

    def __init__(self, seed: int, frames: int, height: int, width: int, supersample: int, path: str = "random",
                 texture: str = "photo", moving: bool = False, fov: tuple[float, float] | None = None):
        rng = np.random.default_rng(seed)
        self.scene = _Scene(rng, texture)
        fov = _fov_of(rng, seed, check_fov(fov))  # ``fov``: a zoomed camera (centred: the path does the aiming)
        if path not in CAMERA_PATHS:
            raise ValueError(f"camera path must be one of {', '.join(CAMERA_PATHS)}; got {path!r}.")
        self.path = getattr(CameraPath, path)(rng)
        self.frames, self.height, self.width, self.s = frames, height, width, supersample
        self.f = 0.5 * width * supersample / np.tan(fov / 2)  # in supersampled pixels
        # the depth of output pixel u is the ray through supersampled pixel s·u + s//2 (see _shoot)
        c = (supersample // 2 + 0.5) / supersample
        self.K = np.array([[self.f / supersample, 0, width / 2 - c], [0, self.f / supersample, height / 2 - c],
                           [0, 0, 1]])
        self.ball = None  # (start centre [3], end centre [3], radius)
        if moving:
            b = np.random.default_rng([seed, 34])  # its own stream: the scene's draws above are untouched
            r = b.uniform(0.25, 0.4)
            z = b.uniform(1.6, min(3.0, self.scene.back_z - r - 0.2))
            span = 0.75 * z * np.tan(fov / 2)  # from one side of the view to the other at its depth
            x0, x1 = (-span, span) if b.random() < 0.5 else (span, -span)
            y = self.scene.floor_y - r
            self.ball = (np.array([x0, y, z]), np.array([x1, y, z]), r)

    def pose(self, k: int) -> np.ndarray:
        return self.path.pose(k / max(self.frames - 1, 1))

    def ball_centre(self, k: int) -> np.ndarray:
        a, b, _ = self.ball
        return a + (b - a) * (k / max(self.frames - 1, 1))

    def motion(self) -> np.ndarray:
        """``[T,3]``: the ball's world displacement from frame k to k+1 (zeros without a ball; last row 0)."""
        out = np.zeros((self.frames, 3))
        if self.ball is not None:
            out[:-1] = [self.ball_centre(k + 1) - self.ball_centre(k) for k in range(self.frames - 1)]
        return out

    def frame(self, k: int, name: str) -> DepthSample:
        pose = self.pose(k)
        spheres = self.scene.spheres
        if self.ball is not None:
            self.scene.spheres = spheres + [(self.ball_centre(k), self.ball[2])]
        try:
            sample = _sample(*_shoot(self.scene, self.height, self.width, self.s, self.f, pose[:3, :3], pose[:3, 3]),
                             name=name)
        finally:
            self.scene.spheres = spheres
        if self.ball is not None:
            sample.moving = self._on_ball(k, pose, sample.depth, sample.valid)
        return sample

    def _on_ball(self, k: int, pose: np.ndarray, depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``[H,W]`` bool: pixels whose (centre-sample) ray meets the ball first."""
        h, w = depth.shape
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        d = np.linalg.inv(self.K) @ np.stack([u.ravel(), v.ravel(), np.ones(h * w)])  # [3,P] z = 1: t is depth
        d = pose[:3, :3] @ d  # world directions
        c = self.ball_centre(k) - pose[:3, 3]
        r = self.ball[2]
        dd = (d * d).sum(0)
        b = c @ d
        disc = b * b - dd * (c @ c - r * r)
        with np.errstate(invalid="ignore"):
            t = (b - np.sqrt(disc)) / dd  # [P]
        t = np.where(disc >= 0, t, np.inf).reshape(h, w)
        return valid & np.isfinite(t) & (np.abs(t - depth) <= 1e-4 * np.maximum(depth, 1e-6))


def render_video(seed: int, frames: int, height: int, width: int, supersample: int = 2,
                 path: str = "random", texture: str = "photo", moving: bool = False,
                 fov: tuple[float, float] | None = None) -> VideoClip:
    """Render video ``seed``: ``frames`` views along its camera path (``path``: one of :data:`CAMERA_PATHS`),
    with exact depth, intrinsics and poses; ``moving``: with a ball rolling across (and its ``moving`` mask and
    ``motion``); ``fov``: the field of view drawn log-uniformly from ``[lo, hi]`` degrees (see :func:`render`)."""
    v = _VideoScene(seed, frames, height, width, supersample, path, texture, moving, fov)
    samples = [v.frame(k, f"video_{seed}_{k:06d}") for k in range(frames)]
    return VideoClip(rgb=np.stack([s.rgb for s in samples]), depth=np.stack([s.depth for s in samples]),
                     valid=np.stack([s.valid for s in samples]), intrinsics=v.K.copy(),
                     poses=np.stack([v.pose(k) for k in range(frames)]),
                     name=f"synthetic_video_{seed}" + ("_moving" if moving else ""),
                     moving=np.stack([s.moving for s in samples]) if moving else None,
                     motion=v.motion() if moving else None)


VIDEO_SEED_OFFSET = 500_000  # video scenes never coincide with the image splits' scenes


class SyntheticDataset:
    """``size`` scenes of one split, rendered on demand at ``height × width``; ``fov`` (``[lo, hi]`` degrees) and
    ``crop``: zoomed cameras aimed at part of the room (see :func:`render`); ``fine``: with fine structure. A data
    spec gives them as keys: ``{name: synthetic, path: flat, size: 20000, fov: [6, 70]}``."""

    def __init__(self, size: int = 1000, height: int = 96, width: int = 128, split: str = "train",
                 texture: str = "photo", materials: bool = False, fov: tuple[float, float] | None = None,
                 crop: bool = True, fine: bool = False):
        self.fov, self.crop, self.fine = check_fov(fov), bool(crop), bool(fine)
        if "+" in texture:  # "flat+materials" (what ``synthetic:flat+materials`` in a data spec gives)
            texture, _, extra = texture.partition("+")
            if extra != "materials":
                raise ValueError(f"synthetic: unknown option {extra!r}; use synthetic:TEXTURE[+materials].")
            materials = True
        self.materials = bool(materials)
        if split not in SPLIT_SEEDS:
            raise ValueError(f"synthetic split must be one of {', '.join(SPLIT_SEEDS)}; got {split!r}.")
        self.size, self.height, self.width, self.split = int(size), int(height), int(width), split
        self.texture = check_texture(texture)
        self.native_size = (self.height, self.width)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> DepthSample:
        if not 0 <= i < self.size:
            raise IndexError(i)
        return render(SPLIT_SEEDS[self.split] + i, self.height, self.width, texture=self.texture,
                      materials=self.materials, fov=self.fov, crop=self.crop, fine=self.fine)


class SyntheticVideoDataset:
    """``size`` videos of ``frames`` frames of one split, rendered frame by frame on demand."""

    def __init__(self, size: int = 200, frames: int = 48, height: int = 96, width: int = 128, split: str = "train",
                 supersample: int = 2, path: str = "random", texture: str = "photo", moving: bool = False,
                 fov: tuple[float, float] | None = None):
        self.moving, self.fov = bool(moving), check_fov(fov)
        if split not in SPLIT_SEEDS:
            raise ValueError(f"synthetic split must be one of {', '.join(SPLIT_SEEDS)}; got {split!r}.")
        self.size, self.frames, self.height, self.width = int(size), int(frames), int(height), int(width)
        self.split, self.supersample, self.path = split, int(supersample), path
        self.texture = check_texture(texture)
        self.native_size = (self.height, self.width)
        self._cache: tuple[int, _VideoScene] | None = None

    def __len__(self) -> int:
        return self.size

    def seed(self, i: int) -> int:
        if not 0 <= i < self.size:
            raise IndexError(i)
        return SPLIT_SEEDS[self.split] + VIDEO_SEED_OFFSET + i

    def _scene(self, i: int) -> _VideoScene:
        if self._cache is None or self._cache[0] != i:
            self._cache = (i, _VideoScene(self.seed(i), self.frames, self.height, self.width, self.supersample,
                                                 self.path, self.texture, self.moving, self.fov))
        return self._cache[1]

    def num_frames(self, i: int) -> int:
        return self.frames

    def frame(self, i: int, k: int) -> DepthSample:
        if not 0 <= k < self.frames:
            raise IndexError(k)
        return self._scene(i).frame(k, f"video_{self.seed(i)}_{k:06d}")

    def intrinsics(self, i: int) -> np.ndarray:
        return self._scene(i).K.copy()

    def poses(self, i: int) -> np.ndarray:
        v = self._scene(i)
        return np.stack([v.pose(k) for k in range(self.frames)])

    def clip(self, i: int) -> VideoClip:
        return render_video(self.seed(i), self.frames, self.height, self.width, self.supersample, self.path,
                            self.texture, self.moving, self.fov)
