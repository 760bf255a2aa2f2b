"""Inference: from a SimpleITK image to a label map on the image's own grid.

orientation (voxel axes to the model's), resampling (to the model grid and back),
sliding_window (tiles + Gaussian blending), backends (PyTorch, ONNX Runtime), memory (the
pipeline's memory estimate), predictor (`Predictor`, the whole chain for one image) and
pipeline (file in, label map + report + optional outputs out, used by `batseg predict` and
`batseg benchmark`).
"""
