"""Geometry from depth: surface normals of the back-projected depth map."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import InputError


def depth_to_normals(depth: torch.Tensor, fov_degrees: float = 60.0, near: float = 1.0,
                     far: float = 3.0) -> torch.Tensor:
    """Normals of the surface a depth map ``[N,1,H,W]`` describes → ``[N,3,H,W]`` unit vectors.

    Marigold's depth is affine-invariant in 0..1 (0 = near), so it is first mapped to ``near + d·(far-near)``;
    the ratio far/near sets how strongly perspective bends the surface. Points are back-projected with a pinhole
    camera whose horizontal field of view is ``fov_degrees`` (square pixels), the normal is the cross product of
    the central-difference tangents, and it is oriented towards the camera. Axes follow Marigold's normals
    convention: x right, y up, z towards the viewer.
    """
    if depth.ndim == 2:
        depth = depth[None, None]
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise InputError(f"Depth must be [N,1,H,W]; got {tuple(depth.shape)}.")
    if not 1.0 <= fov_degrees <= 179.0:
        raise InputError(f"Field of view must be between 1 and 179 degrees; got {fov_degrees}.")
    if not 0 < near < far:
        raise InputError(f"Need 0 < near < far; got near={near}, far={far}.")
    n, _, h, w = depth.shape
    z = near + depth.float().clip(0, 1) * (far - near)  # [N,1,H,W]
    f = (w / 2) / math.tan(math.radians(fov_degrees) / 2)  # focal length in pixels
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=z.device),
                            torch.arange(w, dtype=torch.float32, device=z.device), indexing="ij")
    x = (xs - (w - 1) / 2) / f * z  # [N,1,H,W], right
    y = ((h - 1) / 2 - ys) / f * z  # [N,1,H,W], up
    p = torch.cat([x, y, -z], dim=1)  # [N,3,H,W]; the camera looks down -z
    pp = F.pad(p, (1, 1, 1, 1), mode="replicate")  # [N,3,H+2,W+2]
    du = (pp[..., 1:-1, 2:] - pp[..., 1:-1, :-2]) / 2  # [N,3,H,W] along +x (columns)
    dv = (pp[..., :-2, 1:-1] - pp[..., 2:, 1:-1]) / 2  # [N,3,H,W] along +y (rows upwards)
    normal = torch.cross(du, dv, dim=1)  # [N,3,H,W]
    normal = normal / normal.norm(dim=1, keepdim=True).clamp(min=1e-12)
    flip = (normal[:, 2:3] < 0).float() * -2 + 1  # face the viewer (+z)
    return normal * flip
