"""nnU-Net v2 plans written without nnU-Net's planner: for a model file that carries none.

Two users need a plans dict that no planning run produced: nnU-Net's own predictor set up
from a model file without stored plans (`batseg.nnunet_reference`, e.g. the benchmark's
untrained model) and the trainer built without a data set (`batseg.training.standalone`, for
the training-step benchmark and the tests). Both get the same plan: BATseg's network, spacing,
patch and batch in nnU-Net's format, per-volume z-score, and nnU-Net's default resampling
functions (third order for images, first for labels and probabilities, nearest neighbour
between slices).

Pure data: importing this module imports neither torch nor nnU-Net.
"""

from __future__ import annotations

from typing import Any, Sequence

CONFIGURATION = "3d_fullres"
UNET_CLASS = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
# The PlainConvUNet keyword arguments nnU-Net must import (conv, norm, nonlinearity classes).
REQUIRES_IMPORT = ("conv_op", "norm_op", "dropout_op", "nonlin")


def _resampling(is_seg: bool, order: int) -> dict[str, Any]:
    return {"is_seg": is_seg, "order": order, "order_z": 0, "force_separate_z": None}


def synthetic_plans(
    arch_kwargs: dict[str, Any],
    spacing: Sequence[float],
    patch_size: Sequence[int],
    batch_size: int = 2,
    dataset_name: str = "Dataset001_BATseg",
    plans_name: str = "BATsegPlans",
    planner: str = "batseg.nnunet_plans",
) -> dict[str, Any]:
    """A plans dict in nnU-Net's format with one `3d_fullres` configuration (module docstring)."""
    patch = [int(p) for p in patch_size]
    spacing = [float(s) for s in spacing]
    configuration = {
        "data_identifier": f"{plans_name}_{CONFIGURATION}",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": int(batch_size),
        "patch_size": patch,
        "median_image_size_in_voxels": patch,
        "spacing": spacing,
        "normalization_schemes": ["ZScoreNormalization"],
        "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": _resampling(False, 3),
        "resampling_fn_seg_kwargs": _resampling(True, 1),
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": _resampling(False, 1),
        "architecture": {
            "network_class_name": UNET_CLASS,
            "arch_kwargs": arch_kwargs,
            "_kw_requires_import": list(REQUIRES_IMPORT),
        },
        "batch_dice": False,
    }
    return {
        "dataset_name": dataset_name,
        "plans_name": plans_name,
        "original_median_spacing_after_transp": spacing,
        "original_median_shape_after_transp": patch,
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {CONFIGURATION: configuration},
        "experiment_planner_used": planner,
        "label_manager": "LabelManager",
        # z-score needs none of these; nnU-Net's predictor reads the key, so it is present.
        "foreground_intensity_properties_per_channel": {
            "0": {"max": 1.0, "mean": 0.0, "median": 0.0, "min": 0.0, "percentile_00_5": 0.0,
                  "percentile_99_5": 1.0, "std": 1.0}
        },
    }
