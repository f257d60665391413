"""3D from depth: normals, meshes and points, bas-relief, stereo views.

- ``normals``: geometric surface normals from a depth map.
- ``mesh``: the scene as the camera saw it (edges cut at depth jumps), point clouds, trimesh export.
- ``relief``: a watertight bas-relief in millimetres for 3D printing.
- ``stereo``: left and right views by a depth-ordered forward warp, SBS / TB / anaglyph / cross-eyed layouts.
"""

from ..moved import package_getattr  # noqa: E402

__getattr__ = package_getattr(__name__)  # the names the flat geometry.py held, deprecated (marigold/moved/)
