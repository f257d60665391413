"""Side-by-side benchmark of this project against diffusers' MarigoldDepthPipeline (``python -m bench``)."""
