"""The quality-control picture of a case (`batseg predict --qc`): CASE.qc.png.

One look tells whether the segmentation is plausible: for each reported lesion, the sagittal
slice through it (the slice holding most of its voxels) with the label map overlaid in the
tumour colours (`batseg.labels`, the Slicer module's colours) and the lesion's number, type,
volume and type probability beneath; a legend of the four types; a title with the case name,
the model (name and version) and the lesion count; and the research-use line (the model's
disclaimer) at the bottom. A case without a lesion shows its middle sagittal slice, marked "no
lesion reported". At most `MAX_PANELS` lesions are drawn (the report lists them all; the
picture says how many are left out).

Decisions:
- Display orientation: the image and labels are brought to the nearest "PIR" orientation by
  permuting and flipping voxel axes only (`sitk.DICOMOrient`, no resampling), so every panel
  shows superior at the top and anterior on the left, as a radiologist reads a sagittal
  slice, whatever the input's orientation; the aspect ratio follows the voxel spacing.
- Grey levels: the 1st to 99th percentile of the whole scan, so one bright artefact does not
  darken every slice; labels are drawn at 45 % opacity with their outline fully opaque, so
  the tumour's own signal stays visible.
- Drawn on a bare matplotlib Figure with the Agg canvas (no pyplot, no display), like the
  `batseg evaluate` chart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from batseg.labels import TUMOUR_CLASSES
from batseg.lesions import label_lesions

QC_SUFFIX = ".qc.png"
MAX_PANELS = 6
OVERLAY_ALPHA = 0.45
DPI = 100
DISPLAY_ORIENTATION = "PIR"  # array (k, j, i): k left-right slices, rows superior->inferior, columns anterior->posterior


def display_arrays(image: sitk.Image, labels: sitk.Image) -> tuple[np.ndarray, sitk.Image, tuple[float, float, float]]:
    """The scan as a (k, j, i) array in PIR order, the labels as a PIR image, and the spacing (k, j, i)."""
    oriented_image = sitk.DICOMOrient(image, DISPLAY_ORIENTATION)
    oriented_labels = sitk.DICOMOrient(labels, DISPLAY_ORIENTATION)
    spacing = tuple(float(s) for s in oriented_image.GetSpacing()[::-1])
    return sitk.GetArrayFromImage(oriented_image).astype(np.float32), oriented_labels, spacing  # type: ignore[return-value]


def lesion_slices(labels: sitk.Image, report: dict[str, Any]) -> list[tuple[dict, int, np.ndarray]]:
    """(report lesion, sagittal slice index, its voxels on that slice) for each reported lesion,
    in the report's order.

    `labels` is the label map in display (PIR) orientation. Its voxels are the report's, only
    reordered, so each connected lesion has the centroid (LPS mm) of one report entry; the
    lesion is shown on its slice with the most voxels.
    """
    array = sitk.GetArrayViewFromImage(labels)
    components, count = label_lesions(array > 0)
    if count == 0:
        return []
    indices = np.arange(1, count + 1)
    centres = ndimage.center_of_mass(np.ones(array.shape), components, indices)
    physical = np.asarray([labels.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in c[::-1]))
                           for c in centres])
    boxes = ndimage.find_objects(components)
    chosen = []
    for lesion in report.get("lesions", []):
        index = int(np.argmin(np.linalg.norm(physical - np.asarray(lesion["centroid_lps_mm"]), axis=1)))
        box = boxes[index]
        voxels = components[box] == index + 1
        per_slice = voxels.reshape(voxels.shape[0], -1).sum(axis=1)
        k = box[0].start + int(np.argmax(per_slice))
        chosen.append((lesion, k, components[k] == index + 1))
    return chosen


def qc_figure(image: sitk.Image, labels: sitk.Image, report: dict[str, Any], model: dict[str, Any], disclaimer: str):
    """The QC picture of one case as a matplotlib Figure (module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    volume, oriented_labels, spacing = display_arrays(image, labels)
    label_array = sitk.GetArrayFromImage(oriented_labels).astype(np.uint8)
    low, high = (float(v) for v in np.percentile(volume, (1, 99)))
    if high <= low:
        low, high = float(volume.min()), float(volume.max())
        high = high if high > low else low + 1.0
    panels = lesion_slices(oriented_labels, report)
    left_out = max(0, len(panels) - MAX_PANELS)
    panels = panels[:MAX_PANELS] or [(None, volume.shape[0] // 2, None)]
    aspect = spacing[1] / spacing[2]  # row height over column width, in mm
    width_in = max(3.2, 3.2 * volume.shape[2] * spacing[2] / max(volume.shape[1] * spacing[1], 1e-6))
    figure = Figure(figsize=(min(width_in, 4.5) * len(panels) + 0.4, 6.2), dpi=DPI)
    FigureCanvasAgg(figure)
    axes_list = figure.subplots(1, len(panels), squeeze=False)[0]
    colours = np.zeros((len(TUMOUR_CLASSES) + 1, 4), dtype=np.float32)
    for tumour in TUMOUR_CLASSES:
        colours[tumour.value] = to_rgba(tumour.color)
    for axes, (lesion, k, own) in zip(axes_list, panels):
        axes.imshow(volume[k], cmap="gray", vmin=low, vmax=high, aspect=aspect, interpolation="nearest")
        overlay = colours[label_array[k]].copy()
        overlay[..., 3] *= OVERLAY_ALPHA
        axes.imshow(overlay, aspect=aspect, interpolation="nearest")
        for tumour in TUMOUR_CLASSES:
            mask = label_array[k] == tumour.value
            if mask.any():
                axes.contour(mask.astype(np.float32), levels=[0.5], colors=[tumour.color], linewidths=0.8)
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(_panel_title(lesion, k, volume.shape[0]), fontsize=8)
        for text, x, y, ha, va in (("S", 0.5, 0.99, "center", "top"), ("I", 0.5, 0.01, "center", "bottom"),
                                   ("A", 0.01, 0.5, "left", "center"), ("P", 0.99, 0.5, "right", "center")):
            axes.text(x, y, text, transform=axes.transAxes, color="yellow", fontsize=8, ha=ha, va=va)
        if lesion is not None:
            _mark_lesion(axes, own, lesion["id"])
    handles = [Patch(facecolor=t.color, edgecolor=t.color, label=f"{t.value} {t.name}") for t in TUMOUR_CLASSES]
    figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.045))
    count = report.get("lesion_count", 0)
    more = f" ({left_out} more not shown: see the report)" if left_out else ""
    model_text = f"{model.get('name') or 'unknown model'} {model.get('version') or ''}".strip()
    figure.suptitle(
        f"{report.get('case_id') or 'case'}: {count} lesion(s), {report.get('total_volume_cm3', 0.0):.2f} cm3"
        f"{more}\nmodel {model_text}", fontsize=10,
    )
    figure.text(0.5, 0.008, _one_line(disclaimer), ha="center", va="bottom", fontsize=7, color="firebrick", wrap=True)
    figure.subplots_adjust(left=0.02, right=0.98, top=0.86, bottom=0.12, wspace=0.06)
    return figure


def _mark_lesion(axes: Any, voxels: np.ndarray, number: int) -> None:
    """The lesion's number to the right of its voxels on the slice (posterior side), with a tick."""
    rows, columns = np.nonzero(voxels)
    if rows.size == 0:
        return
    centre = int(np.argmin(np.abs(rows - rows.mean()) + np.abs(columns - columns.mean())))
    axes.annotate(
        str(number), xy=(columns[centre], rows[centre]), xytext=(columns.max() + 12, rows[centre]),
        color="yellow", fontsize=9, fontweight="bold", va="center",
        arrowprops={"arrowstyle": "-", "color": "yellow", "linewidth": 0.8},
    )


def _panel_title(lesion: dict[str, Any] | None, k: int, slices: int) -> str:
    """The caption of one panel: the lesion and its slice, or the slice of a case without lesion."""
    where = f"sagittal slice {k + 1}/{slices} (left to right)"
    if lesion is None:
        return f"no lesion reported\n{where}"
    mixed = " (mixed types)" if lesion.get("mixed_types") else ""
    return (
        f"lesion {lesion['id']}: {lesion['type_name']}{mixed}\n{lesion['volume_cm3']:.2f} cm3, "
        f"type probability {lesion['type_probability']:.2f}\n{where}"
    )


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def qc_writer(image: sitk.Image, labels: sitk.Image, report: dict[str, Any], model: dict[str, Any],
              disclaimer: str) -> Callable[[Path], None]:
    """A writer of the QC PNG for `batseg.atomic_files` (the figure is drawn now, saved on writing)."""
    figure = qc_figure(image, labels, report, model, disclaimer)

    def write(temporary: Path) -> None:
        figure.savefig(os.fspath(temporary), format="png", dpi=DPI)

    return write
