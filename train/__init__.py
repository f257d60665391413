"""Fine-tuning Stable Diffusion 2 into Marigold (``python -m train.finetune``) and the affine-invariant depth
evaluation (``python -m train.evaluate``). See train/README.md."""
