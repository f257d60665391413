"""Intrinsic image decomposition (prs-eth/Marigold v1.1): appearance and lighting."""

from __future__ import annotations

from ..core.modality import Modality, Target, register


# prs-eth/Marigold v1.1: appearance = albedo (sRGB) + material (roughness, metallicity, an empty channel; their
# InteriorVerse loader gamma-encodes it like the albedo, and their evaluation decodes it back to linear);
# lighting = albedo, diffuse shading and the non-diffuse residual, all linear (target_properties in the hub files)
register(Modality("iid-appearance", "intrinsics", (Target("albedo", 3, "srgb"), Target("material", 3, "srgb")),
                  "MarigoldIntrinsicsPipeline", "intrinsics",
                  index_keys={"target_properties": {
                      "target_names": ["albedo", "material"],
                      "albedo": {"prediction_space": "srgb"},
                      "material": {"prediction_space": "stack", "sub_target_names": ["roughness", "metallicity", None]},
                      "roughness": {"prediction_space": "linear"},
                      "metallicity": {"prediction_space": "linear"}}},
                  files=("_albedo.png", "_material.png"),
                  # tiles: per channel, the global pass's low frequencies plus the tiles' high ones, no fit (the
                  # maps are absolute), clipped to 0..1
                  tile_split="plain"))
register(Modality("iid-lighting", "intrinsics",
                  (Target("albedo", 3, "linear"), Target("shading", 3, "linear"), Target("residual", 3, "linear")),
                  "MarigoldIntrinsicsPipeline", "intrinsics",
                  index_keys={"target_properties": {
                      "target_names": ["albedo", "shading", "residual"],
                      "albedo": {"prediction_space": "linear", "up_to_scale": False},
                      "shading": {"prediction_space": "linear", "up_to_scale": True},
                      "residual": {"prediction_space": "linear", "up_to_scale": True}}},
                  files=("_albedo.png", "_shading.png", "_residual.png"),
                  # tiles: as appearance; shading and residual are up to a scale per prediction, which the merge
                  # does not fit (a tile's scale error reaches only its detail, the structure is the pass's)
                  tile_split="plain"))
