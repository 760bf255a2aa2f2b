"""A model's postprocessing settings as its manifest records them, and the defaults.

Kept apart from `postprocess.py` (numpy, scipy) because the Slicer panel reads these settings
in Slicer's own Python, where scipy is one of the dependencies the module installs: the module
must load, and show its model list, before they are installed.
"""

from __future__ import annotations

# Minimum lesion volume kept by default, in mm3. Lemay et al. drop tumour predictions below
# 0.2 cm3 (200 mm3), but their three intramedullary types are mostly large; hemangioblastoma
# nodules are often below 1 cm3 and can be a few millimetres across (a 5 mm nodule is 65 mm3),
# so 200 mm3 would delete true small nodules. 20 mm3 removes speckle (about 27 voxels at
# 0.47 x 0.47 x 3.3 mm, i.e. a 2.9 mm patch on a single slice) while keeping any nodule of
# 3.4 mm diameter or more. It is the default for a model that carries no choice of its own;
# `batseg tune-postprocess` chooses one per model on validation cases and stores it in the
# model file's manifest (see `recommended_min_volume`).
DEFAULT_MIN_VOLUME_MM3 = 20.0
# The largest minimum mean tumour probability a manifest or option may give: at 1 every lesion
# the network has any doubt about would go.
MAX_MIN_TUMOUR_PROBABILITY = 0.999
# The largest minimum enhancement (a lesion's median signal over the cord's) a manifest or option
# may give: the brightest lesions of METHOD.md (hemangioblastoma) are about 3 times the cord.
MAX_MIN_ENHANCEMENT = 5.0
POSTPROCESSING_KEY = "postprocessing"  # manifest key written by batseg.postprocess_tuning


def recommended_min_volume(manifest: dict) -> float:
    """The minimum lesion volume (mm3) a model file recommends, else DEFAULT_MIN_VOLUME_MM3."""
    value = (manifest.get(POSTPROCESSING_KEY) or {}).get("min_volume_mm3")
    return DEFAULT_MIN_VOLUME_MM3 if value is None else float(value)


def recommended_one_type_per_lesion(manifest: dict) -> bool:
    """Whether a model file recommends one tumour type per lesion (chosen on validation data); else off."""
    return bool((manifest.get(POSTPROCESSING_KEY) or {}).get("one_type_per_lesion", False))


def recommended_min_tumour_probability(manifest: dict) -> float:
    """The minimum mean tumour probability of a kept lesion a model file recommends, else 0 (keep all)."""
    value = (manifest.get(POSTPROCESSING_KEY) or {}).get("min_tumour_probability")
    return 0.0 if value is None else float(value)


def recommended_min_enhancement(manifest: dict) -> float:
    """The minimum enhancement of a kept lesion (its median signal over the cord's) a model file
    recommends, else 0 (keep all)."""
    value = (manifest.get(POSTPROCESSING_KEY) or {}).get("min_enhancement")
    return 0.0 if value is None else float(value)
