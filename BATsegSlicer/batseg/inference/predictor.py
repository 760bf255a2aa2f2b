"""The predictor: a model file loaded once, applied to SimpleITK images on their own grid.

`Predictor.predict(image)` runs, per image:
1. preprocess: permute / flip the voxel axes to the model's orientation (`orientation`, no
   interpolation), z-score the volume (mean and standard deviation over the whole volume, as
   nnU-Net's ZScoreNormalization without mask, which the training plans use), then resample it
   to the model's target spacing (`resampling`, cubic in-plane / nearest across slices by
   default). Normalising before resampling follows nnU-Net's preprocessing order;
2. predict: sliding window over the model grid (`sliding_window`) with the chosen backend
   (`backends`), optionally with mirroring test-time augmentation;
3. resample back: the logits (and field) are resized to the reoriented input's shape (linear
   in-plane, nearest across slices, nnU-Net's scheme for probabilities), the argmax is taken
   there and the result is transposed back to the input's axes, so the label map has the input's
   exact grid: origin, spacing, direction and size are copied from the input image.

Decisions:
- Test-time augmentation mirrors the model-grid tile along every subset of the model's mirror
  axes (manifest `nnunet.inference_allowed_mirroring_axes`, default all three: left-right, superior-inferior,
  anterior-posterior, as nnU-Net's 3-D training augments and its predictor mirrors) and
  averages the logits and the field, as nnU-Net does: 8 passes for 3 axes.
- Probabilities are the softmax of the back-resampled logits (nnU-Net resamples logits too);
  the tumour channels 1-4 are returned. The field is the head's activated output, resampled
  linearly.
- On a GPU out-of-memory error the whole image is predicted again on the CPU (a warning says
  so); the predictor then stays on the CPU for later images.
- Network outputs with NaN or infinite values are refused (`BATsegError`): argmax over NaN
  logits is class 0, so a broken model (or one driven out of range) would otherwise label
  every voxel background and report "no tumour" with exit status 0.
"""

from __future__ import annotations

import itertools
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import SimpleITK as sitk

from batseg.errors import BATsegError, InputImageError, ModelFileError
from batseg.inference import backends
from batseg.inference.memory import (
    ACTIVATION_BUDGET_BYTES,
    available_memory,
    check_fits,
    estimate_peak_bytes,
    tile_voxel_budget,
)
from batseg.inference.canal_crop import DEFAULT_MARGIN_MM, predict_cropped, roi_box
from batseg.inference.orientation import (
    MODEL_ORIENTATION,
    AxisMapping,
    axis_mapping,
    model_axes,
    orientation_warning,
)
from batseg.inference.resampling import SCHEMES, model_grid_shape, resize_channels, resize_volume
from batseg.inference.sliding_window import (
    DEFAULT_STEP,
    choose_tile,
    downsampling_factors,
    plan_windows,
    predict_windows,
)
from batseg.io import ImageInfo, validate_image
from batseg.model_file import check_classes, verify
from batseg.progress import Progress

IMAGE_ORDER = 3  # nnU-Net's order for images
OUTPUT_ORDER = 1  # nnU-Net's order for logits / probabilities


@dataclass
class Prediction:
    """The result of one image, on the input image's grid.

    labels: uint8 label map 0-4 (before postprocessing); probabilities: (4, z, y, x) float32,
    tumour classes 1-4, when asked for; field: (F, z, y, x) float32 when asked for; timings:
    seconds per stage; warnings: lines for the user; details: facts for the log.
    """

    labels: sitk.Image
    probabilities: np.ndarray | None
    field: np.ndarray | None
    timings: dict[str, float] = dataclass_field(default_factory=dict)
    warnings: list[str] = dataclass_field(default_factory=list)
    details: dict[str, Any] = dataclass_field(default_factory=dict)


def zscore(volume: np.ndarray) -> np.ndarray:
    """(volume - mean) / std over the whole volume, in place on a float32 array."""
    mean = float(volume.mean(dtype=np.float64))
    std = float(volume.std(dtype=np.float64))
    volume -= mean
    volume /= max(std, 1e-8)
    return volume


def softmax_inplace(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 of a float32 array, computed in its own buffer."""
    logits -= logits.max(axis=0, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=0, keepdims=True)
    return logits


def mirror_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of the spatial axes (0-2) as axes of a (1, C, z, y, x) array, () first."""
    spatial = [2 + int(a) for a in axes]
    return [combo for r in range(len(spatial) + 1) for combo in itertools.combinations(spatial, r)]


def check_finite(output: np.ndarray, what: str) -> None:
    """Refuse network outputs with NaN or infinite values (module docstring)."""
    if np.isfinite(output).all():
        return
    bad = int(output.size - np.count_nonzero(np.isfinite(output)))
    raise BATsegError(
        f"the network's {what} are not finite numbers (NaN or infinity) at {bad} of {output.size} values; "
        "the model file is broken or this image drives it out of range"
    )


class Predictor:
    """A model file loaded once; `predict` segments SimpleITK images (module docstring)."""

    def __init__(
        self,
        model_path: str | Path,
        device: str = "auto",
        backend: str = "auto",
        threads: int | None = None,
        tile: str | Sequence[int] = "auto",
        tile_step: float = DEFAULT_STEP,
        resampling: str | None = None,
        cache_folder: Path | None = None,
        progress: Progress | None = None,
        tile_budget_bytes: int = ACTIVATION_BUDGET_BYTES,
    ) -> None:
        self.threads = backends.check_threads(threads)
        self.model_path = Path(model_path)
        self.manifest = verify(self.model_path)
        check_classes(self.manifest)
        self.progress = progress or Progress("quiet")
        self._read_manifest(resampling)
        self.tile_mode = tile
        self.tile_step = float(tile_step)
        self.tile_budget = tile_voxel_budget(self.first_features, tile_budget_bytes)
        self.cache_folder = cache_folder
        self.device = backends.resolve_device(device)
        self.backend_name = backends.resolve_backend(backend, self.device)
        self._backend_choice = backend
        self.backend, self.backend_info = self._create_backend(self.backend_name, self.device)

    # -- set-up --------------------------------------------------------------------------------

    def _read_manifest(self, resampling: str | None) -> None:
        manifest = self.manifest
        arch, settings = manifest["architecture"], manifest["input"]
        name = self.model_path.name
        if settings.get("normalization") != "zscore":
            raise ModelFileError(f"{name}: normalization {settings.get('normalization')!r} is not supported (only 'zscore')")
        if int(arch["input_channels"]) != 1:
            raise ModelFileError(f"{name}: the model expects {arch['input_channels']} input channels; BATseg reads one image")
        try:
            self.orientation, self.transpose = model_axes(settings.get("orientation", MODEL_ORIENTATION))
        except ValueError as exc:
            raise ModelFileError(f"{name}: {exc}") from None
        self.target_spacing = tuple(float(s) for s in settings["target_spacing"])
        # The orientation code names the image axes x, y, z: the array axes (z, y, x) read it backwards.
        letters = [self.orientation[::-1][axis] for axis in self.transpose]
        self.superior_inferior_axis = next(i for i, letter in enumerate(letters) if letter in "SI")
        self.patch_size = tuple(int(p) for p in settings["patch_size"])
        self.resampling = resampling or settings.get("resampling", "separate_z")
        if self.resampling not in SCHEMES:
            raise BATsegError(f"unknown resampling scheme {self.resampling!r}; choose one of {', '.join(SCHEMES)}")
        self.multiple = downsampling_factors(arch["arch_kwargs"]["strides"])
        self.first_features = int(arch["arch_kwargs"]["features_per_stage"][0])
        self.num_classes = int(arch["num_classes"])
        head = arch["field_head"]
        self.field_channels = int(head["channels"]) if head else 0
        # An untruncated field (Table 5 ablation) has no "far from every surface" value to fill a crop's outside.
        self.can_crop = not head or head.get("truncation", 1.0) is not None
        mirror = (manifest.get("nnunet") or {}).get("inference_allowed_mirroring_axes")
        self.mirror_axes = tuple(mirror if mirror is not None else (0, 1, 2))

    def _create_backend(self, kind: str, device: str) -> tuple[backends.Backend, dict[str, Any]]:
        try:
            return backends.create_backend(
                kind, self.model_path, self.manifest, device, self.threads, self.cache_folder, self.progress.log
            )
        except BATsegError as exc:
            if kind != "onnx" or self._backend_choice != "auto" or isinstance(exc, ModelFileError):
                raise
            self.progress.log(f"warning: ONNX Runtime unavailable for this model ({exc}); using PyTorch")
            self.backend_name = "torch"
            return backends.create_backend("torch", self.model_path, self.manifest, device, self.threads)

    @property
    def disclaimer(self) -> str:
        from batseg.model_file import DISCLAIMER

        return str(self.manifest.get("disclaimer") or DISCLAIMER)

    # -- planning ------------------------------------------------------------------------------

    def mapping(self, direction: Sequence[float]) -> AxisMapping:
        """How an image with this direction (SimpleITK's 9 values) is brought to the model's axes."""
        matrix = np.asarray(direction, dtype=np.float64).reshape(3, 3)
        return axis_mapping(matrix, self.orientation).then_transpose(self.transpose)

    def _spacing_in_code_order(self) -> tuple[float, float, float]:
        """The target spacing in the array order of the orientation code (before transpose_forward)."""
        spacing = [0.0, 0.0, 0.0]
        for axis, source in enumerate(self.transpose):
            spacing[source] = self.target_spacing[axis]
        return tuple(spacing)  # type: ignore[return-value]

    def model_shape(
        self, size_xyz: Sequence[int], spacing_xyz: Sequence[float], direction: Sequence[float]
    ) -> tuple[int, int, int]:
        """The model-grid shape (z, y, x) of an image given by its SimpleITK geometry."""
        mapping = self.mapping(direction)
        shape = mapping.spacing_to_model(tuple(size_xyz[::-1]))
        spacing = mapping.spacing_to_model(tuple(spacing_xyz[::-1]))
        return self._grid_shape(shape, spacing, size_xyz, spacing_xyz)

    def _grid_shape(
        self, shape: Sequence[int], spacing: Sequence[float], size_xyz: Sequence[int], spacing_xyz: Sequence[float]
    ) -> tuple[int, int, int]:
        """`model_grid_shape`, refusing a spacing so large that the grid size is not even a number."""
        try:
            return model_grid_shape(shape, spacing, self.target_spacing)
        except (OverflowError, ValueError):  # size x spacing / target is infinite
            millimetres = " x ".join(f"{s:g}" for s in spacing_xyz)
            raise InputImageError(
                f"the image ({' x '.join(map(str, size_xyz))} voxels of {millimetres} mm) is far too large to resample "
                "to the model's spacing; check the voxel spacing in its header"
            ) from None

    def tile_for(self, model_shape: Sequence[int], whole_volume: bool = False) -> tuple[int, int, int]:
        """The tile over a model grid of `model_shape`: a box around the cord, or the `whole_volume` (`choose_tile`)."""
        return choose_tile(model_shape, self.patch_size, self.multiple, self.tile_mode, self.tile_budget, self.tile_step,
                           whole_volume)

    def _estimate(self, info: ImageInfo, shape: Sequence[int], keep_field: bool, tiles: bool = True) -> int:
        """Estimated peak bytes for a header and its model grid; without the tile activations when not `tiles`."""
        # Either tiling may run (the whole scan's, or a crop's that grew to the whole grid): the larger estimate.
        layouts = [(0, False)]
        if tiles:
            layouts = [(math.prod(tile), plan_windows(shape, tile, self.tile_step).count > 1)
                       for tile in {self.tile_for(shape, whole) for whole in (True, False)}]
        return max(estimate_peak_bytes(
            math.prod(int(n) for n in info.size), info.bytes_per_component, shape, tile_voxels, several,
            self.num_classes, self.field_channels, self.first_features, keep_field,
        ) for tile_voxels, several in layouts)

    def estimate_peak_bytes(self, info: ImageInfo, keep_field: bool = False) -> int:
        """Estimated peak memory of predicting an image described by its header."""
        return self._estimate(info, self.model_shape(info.size[:3], info.spacing[:3], info.direction), keep_field)

    def check_memory(self, info: ImageInfo, name: str = "the image", keep_field: bool = False) -> None:
        """Refuse (InputImageError) an image whose prediction would not fit in the available memory."""
        shape = self.model_shape(info.size[:3], info.spacing[:3], info.direction)
        available, where = available_memory()
        # The grids alone first: an absurd grid (a wrong spacing) is refused before tiles are planned over it.
        for tiles in (False, True):
            check_fits(self._estimate(info, shape, keep_field, tiles), available, name, info.size, where, shape)

    # -- prediction ----------------------------------------------------------------------------

    @contextmanager
    def _stage(self, name: str, timings: dict[str, float]) -> Iterator[None]:
        start = time.perf_counter()
        with self.progress.stage(name):
            yield
        timings[name] = time.perf_counter() - start

    def preprocess(self, image: sitk.Image) -> tuple[np.ndarray, AxisMapping, tuple[float, ...], tuple[int, ...]]:
        """The z-scored volume on the model grid, the axis mapping, and the reoriented spacing and shape."""
        mapping = self.mapping(image.GetDirection())
        spacing = mapping.spacing_to_model(image.GetSpacing()[::-1])
        size = mapping.spacing_to_model(image.GetSize()[::-1])
        shape = self._grid_shape(size, spacing, image.GetSize(), image.GetSpacing())
        self._check_grid_fits(shape, image.GetSize())
        volume = mapping.to_model(sitk.GetArrayViewFromImage(image)).astype(np.float32, order="C")
        zscore(volume)
        resized = resize_volume(volume, shape, spacing, self.target_spacing, IMAGE_ORDER, self.resampling)
        return resized, mapping, spacing, volume.shape

    def _check_grid_fits(self, shape: Sequence[int], size: Sequence[int]) -> None:
        """Refuse a model grid whose arrays alone exceed the available memory (callers may skip `check_memory`)."""
        per_voxel = 4 * (1 + self.num_classes + self.field_channels)
        available, where = available_memory()
        check_fits(math.prod(shape) * per_voxel, available, "the image", size, where, shape)

    def _tile_runner(self, tta: bool) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]:
        """The function run on each tile: the backend, or the mean over mirrored copies with TTA."""
        combos = mirror_combinations(self.mirror_axes) if tta else [()]

        def run(tile: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            logits_sum, field_sum = None, None
            for axes in combos:
                source = np.ascontiguousarray(np.flip(tile, axes)) if axes else tile
                logits, field = self.backend.run(source)
                if axes:
                    logits = np.flip(logits, axes)
                    field = None if field is None else np.flip(field, axes)
                logits_sum = logits.astype(np.float32) if logits_sum is None else logits_sum + logits
                if field is not None:
                    field_sum = field.astype(np.float32) if field_sum is None else field_sum + field
            scale = 1.0 / len(combos)
            return logits_sum * scale, None if field_sum is None else field_sum * scale

        return run

    def predict_grid(
        self, volume: np.ndarray, tta: bool = False, whole_volume: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        """Logits and field of a z-scored volume already on the model grid (the whole scan, or a box
        around the cord when not `whole_volume`), and facts about the tiles."""
        tile = self.tile_for(volume.shape, whole_volume)
        plan = plan_windows(volume.shape, tile, self.tile_step)

        def on_tile(done: int, total: int) -> None:
            self.progress.update("predict", done, total)

        try:
            logits, field = predict_windows(volume, self._tile_runner(tta), plan, on_tile)
        except Exception as exc:  # GPU out-of-memory comes as RuntimeError subclasses of each library
            if self.device != "cuda" or not backends.is_out_of_memory(exc):
                raise
            self._fall_back_to_cpu()
            logits, field = predict_windows(volume, self._tile_runner(tta), plan, on_tile)
        check_finite(logits, "logits")
        return logits, field, {"model_shape": list(volume.shape), "tile": list(tile), "tiles": plan.count}

    def _fall_back_to_cpu(self) -> None:
        self.progress.log("warning: the GPU ran out of memory; predicting this image again on the CPU (slower)")
        self.device = "cpu"
        self.backend_name = backends.resolve_backend(self._backend_choice, "cpu")
        self.backend, self.backend_info = self._create_backend(self.backend_name, "cpu")
        try:
            import torch

            torch.cuda.empty_cache()
        except (ImportError, RuntimeError):
            pass

    def predict_grid_in_roi(
        self, volume: np.ndarray, roi: np.ndarray, mapping: AxisMapping, spacing: Sequence[float], tta: bool,
        margin_mm: float, warnings: list[str],
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        """`predict_grid` on a box around `roi` (input grid) only: the cascade crop (`canal_crop`)."""
        box = roi_box(mapping.to_model(roi), spacing, self.target_spacing, volume.shape, margin_mm,
                      whole_axes=(self.superior_inferior_axis,))
        if box is None or not self.can_crop:
            warnings.append("the spinal cord mask is empty: the whole volume was segmented" if box is None else
                            "this model's distance field is not truncated, so it cannot be cropped: the whole "
                            "volume was segmented")
            return self.predict_grid(volume, tta)
        facts: dict[str, Any] = {}

        def run(sub: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            # A box widened to the whole grid is the whole scan again: its tiles are the whole scan's.
            logits, field_grid, details = self.predict_grid(sub, tta, whole_volume=sub.shape == volume.shape)
            facts.update(details)
            return logits, field_grid

        result = predict_cropped(volume, run, box, margin_mm, self.target_spacing)
        facts.update({"model_shape": list(volume.shape), "crop_box": [list(result.box.lo), list(result.box.hi)],
                      "crop_widenings": result.widenings, "crop_whole_grid": result.whole_grid})
        return result.logits, result.field, facts

    def predict(
        self, image: sitk.Image, tta: bool = False, probabilities: bool = False, field: bool = False,
        roi: np.ndarray | None = None, crop_margin_mm: float = DEFAULT_MARGIN_MM,
    ) -> Prediction:
        """Segment `image`; labels (and probabilities / field on request) on its exact grid.

        `roi`: a spinal cord mask (z, y, x bool, on the image's array grid): the network then runs
        only on a box around it (`canal_crop`, the cascade crop), grown by `crop_margin_mm`.
        """
        if field and not self.field_channels:
            raise BATsegError(
                f"model {self.manifest.get('name')!r} has no distance-field head (a baseline model); drop --save-field"
            )
        validate_image(image)
        timings: dict[str, float] = {}
        warnings = []
        message = orientation_warning(image, self.orientation, self._spacing_in_code_order())
        if message:
            warnings.append(message)
        with self._stage("preprocess", timings):
            volume, mapping, spacing, input_shape = self.preprocess(image)
        with self._stage("predict", timings):
            if roi is None:
                logits, field_grid, details = self.predict_grid(volume, tta)
            else:
                logits, field_grid, details = self.predict_grid_in_roi(
                    volume, roi, mapping, spacing, tta, crop_margin_mm, warnings)
            del volume
        if field and field_grid is not None:
            check_finite(field_grid, "distance field")
        with self._stage("resample back", timings):
            labels, probs, field_out = self._restore(
                logits, field_grid if field else None, mapping, spacing, input_shape, probabilities
            )
            label_image = sitk.GetImageFromArray(labels)
            label_image.CopyInformation(image)
        details.update(self.backend_info)
        details.update({"tta": tta, "resampling": self.resampling, "axis_order": list(mapping.order),
                        "axis_flip": list(mapping.flip)})
        return Prediction(label_image, probs, field_out, timings, warnings, details)

    def _restore(
        self,
        logits: np.ndarray,
        field_grid: np.ndarray | None,
        mapping: AxisMapping,
        spacing: Sequence[float],
        input_shape: Sequence[int],
        probabilities: bool,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Labels (and probabilities, field) on the input's array grid from model-grid outputs."""
        back = resize_channels(logits, input_shape, self.target_spacing, spacing, OUTPUT_ORDER, self.resampling)
        del logits
        labels = np.ascontiguousarray(mapping.to_input(np.argmax(back, axis=0).astype(np.uint8)))
        probs = None
        if probabilities:
            softmax_inplace(back)
            probs = np.ascontiguousarray(mapping.to_input(back[1:]))
        del back
        field_out = None
        if field_grid is not None:
            resized = resize_channels(field_grid, input_shape, self.target_spacing, spacing, OUTPUT_ORDER, self.resampling)
            field_out = np.ascontiguousarray(mapping.to_input(resized))
        return labels, probs, field_out
