"""The image path: load a checkpoint, sample its target, ensemble the members.

- ``checkpoint``: every loading name in one place (``load``, ``resolve``, ``inspect``, ``MarigoldModel``, …), from
  ``published`` (known repos and pipeline classes), ``files`` (configs, safetensors checks), ``hub`` (resolve,
  download, UNet-only + base), ``inspection``, ``text_encoder`` (the empty-text embedding cache), ``model`` and
  ``loader`` (``load``, the safetensors reader).
- ``image``: inputs to ``[N,3,H,W]`` 0..1, resize, pad to /8 and back.
- ``predict``: the image-conditioned latent sampler (one loop for every modality) and its finishing steps.
- ``ensemble``: affine-invariant and per-modality ensembling with uncertainty.
- ``modality``: what a modality is (targets, encode/decode, conditioning, ensembling, writers); the entries are in
  ``marigold/modalities/``.
- ``coalign``: one scale and shift per unit (video snippets, tiles) so that units agree where they overlap.
- ``tiling``: high-resolution depth from a global pass and overlapping tiles, co-aligned and feathered.
- ``fast``: the CPU speed levers applied at load; ``devices``: device and dtype choice.
- ``snippet``: self-attention across a snippet's frames (video models' UNet); ``distributed``: a process's share.
"""
