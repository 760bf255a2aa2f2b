"""The list of model files: the shipped one(s) and those the user added or fine-tuned.

Model files are `.batseg` archives (manifest.json + weights.safetensors). They are checked with
the engine's own torch-free `batseg.model_file.read_manifest` (listing: reads the manifest only)
and `batseg.model_file.verify` (adding: manifest, version and weights checksum), so Slicer and
the command line accept exactly the same files.

Decisions: shipped models live in the module's Resources/Models folder and are never modified;
user models are copied into the engine's user models folder (`batseg.models.user_models_dir`:
$BATSEG_MODELS_DIR, else ~/.batseg/models; a given folder headless), shared with the CLI. Adding copies through a temporary name and a rename, never replaces
an existing file, and returns the existing entry when a model with the same weights checksum
is already listed (no duplicates).

The panel's model description also says how well the model did on held-out data
(manifest["metrics"]["held_out_phantoms"], written when the model was evaluated), so its
measured weakness is in view where it is chosen, not only in the model card.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batseg.atomic_files import write_atomically
from batseg.errors import BATsegError, ModelFileError
from batseg.inference.expected_time import expected_text
from batseg.model_file import DISCLAIMER as DEFAULT_DISCLAIMER
from batseg.model_file import MODEL_SUFFIX, check_classes
from batseg.models import list_models, user_models_dir
from batseg.postprocess_settings import (
    POSTPROCESSING_KEY, recommended_min_enhancement, recommended_min_tumour_probability, recommended_min_volume,
)

from BATsegSlicerLib.commands import MODULE_DIR
from BATsegSlicerLib.files import move_no_clobber

SHIPPED_MODELS_DIR = os.path.join(MODULE_DIR, "Resources", "Models")

HELD_OUT_KEY = "held_out_phantoms"  # manifest["metrics"][HELD_OUT_KEY], see batseg evaluate
HELD_OUT_FIGURES = (  # (metrics key, what the panel calls it); fractions 0-1
    ("mean_dice", "mean Dice"),
    ("detection_tpr", "lesion detection"),
    ("type_accuracy", "type accuracy"),
)


@dataclass(frozen=True)
class ModelEntry:
    """One usable model file and its manifest."""

    path: str
    manifest: dict[str, Any]
    shipped: bool

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or os.path.splitext(os.path.basename(self.path))[0])

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", ""))

    @property
    def title(self) -> str:
        return str(self.manifest.get("title") or self.name)

    @property
    def weights_sha256(self) -> str:
        return str(self.manifest.get("weights_sha256", ""))

    @property
    def label(self) -> str:
        """What the model selector shows."""
        origin = "shipped" if self.shipped else "added"
        version = f" {self.version}" if self.version else ""
        return f"{self.title}{version} ({origin})"

    @property
    def disclaimer(self) -> str:
        return str(self.manifest.get("disclaimer", ""))

    @property
    def postprocessing_summary(self) -> str:
        """The minimum lesion volume (tumour probability, enhancement) Apply will use with this model, and
        where they come from."""
        tuned = "min_volume_mm3" in (self.manifest.get(POSTPROCESSING_KEY) or {})
        origin = "chosen on validation data" if tuned else "default"
        dropped = [f"Lesions under {recommended_min_volume(self.manifest):g} mm3", *self._other_minimums()]
        listed = dropped[0] if len(dropped) == 1 else ", ".join(dropped[:-1]) + ", and " + dropped[-1]
        return f"{listed} are dropped ({origin})."

    def _other_minimums(self) -> list[str]:
        """The 'those whose ...' clauses of the minimums this model sets besides the volume."""
        clauses = []
        least = recommended_min_tumour_probability(self.manifest)
        if least > 0:
            clauses.append(f"those whose mean tumour probability is under {least:g}")
        enhancement = recommended_min_enhancement(self.manifest)
        if enhancement > 0:  # it removes a tumour that does not enhance too: the user must know
            clauses.append(f"those whose median signal is under {enhancement:g} times the spinal cord's "
                           "(so non-enhancing tumours are missed)")
        return clauses

    @property
    def expected_time(self) -> str:
        """How long a scan takes with this model on a CPU, as measured for its topology ('' if not measured)."""
        return expected_text(self.manifest)

    @property
    def held_out_summary(self) -> str:
        """One line on the model's measured quality on held-out phantoms ('' if never measured)."""
        return held_out_summary(self.manifest)


def held_out_summary(manifest: dict[str, Any]) -> str:
    """E.g. "On 40 held-out phantoms: mean Dice 23.0 %, lesion detection 63.6 %, type accuracy
    39.3 %." from manifest["metrics"]["held_out_phantoms"]; '' when there are no such figures."""
    metrics = manifest.get("metrics")
    held_out = metrics.get(HELD_OUT_KEY) if isinstance(metrics, dict) else None
    if not isinstance(held_out, dict):
        return ""
    figures = [f"{name} {100.0 * held_out[key]:.1f} %" for key, name in HELD_OUT_FIGURES
               if _is_number(held_out.get(key))]
    if not figures:
        return ""
    cases = held_out.get("n_cases")
    where = f"On {int(cases)} held-out phantoms" if _is_number(cases) else "On held-out phantoms"
    return f"{where}: {', '.join(figures)}."


def _is_number(value: Any) -> bool:
    """A real figure (bool is an int in Python, but never a metric; NaN means not measured)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def model_disclaimer(manifest: dict[str, Any]) -> str:
    """The disclaimer the engine prints for this model (its own, else the engine's default)."""
    return str(manifest.get("disclaimer") or DEFAULT_DISCLAIMER)


def read_manifest(path: str) -> dict[str, Any]:
    """The manifest of a BATseg tumour model file (engine's checks of form and classes; raises
    ModelFileError with one line). Fast: the weights are not read."""
    from batseg import model_file

    manifest = model_file.read_manifest(path)
    model_file.check_classes(manifest)
    return manifest


def verify(path: str) -> dict[str, Any]:
    """Full check of a model file, weights checksum and classes included (raises ModelFileError)."""
    from batseg import model_file

    manifest = model_file.verify(path)
    model_file.check_classes(manifest)
    return manifest


class ModelLibrary:
    """Shipped models plus a user models folder."""

    def __init__(self, user_dir: str, shipped_dir: str = SHIPPED_MODELS_DIR) -> None:
        self.user_dir = os.fspath(user_dir)
        self.shipped_dir = os.fspath(shipped_dir)

    def entries(self) -> tuple[list[ModelEntry], list[str]]:
        """Usable models (shipped first, then user models by name) and one line per unusable file."""
        models: list[ModelEntry] = []
        problems: list[str] = []
        # The engine's listing, so that Slicer and `batseg --model` find the same files.
        for found in list_models(Path(self.shipped_dir), Path(self.user_dir)):
            try:
                if found.manifest is None:
                    raise ModelFileError(found.error)
                check_classes(found.manifest)
                models.append(ModelEntry(str(found.path), found.manifest, found.source == "shipped"))
            except ModelFileError as error:
                problems.append(f"{found.path.name}: {error}")
        return models, problems

    def add(self, source: str) -> ModelEntry:
        """Verify `source` and copy it into the user models folder; return its entry."""
        source = os.fspath(source)
        if not source.endswith(MODEL_SUFFIX):
            raise ModelFileError(f"{os.path.basename(source)} is not a BATseg model file: choose a {MODEL_SUFFIX} file")
        manifest = verify(source)
        for entry in self.entries()[0]:
            if entry.weights_sha256 and entry.weights_sha256 == manifest.get("weights_sha256"):
                return entry
        os.makedirs(self.user_dir, exist_ok=True)
        target = self._unique_path(os.path.splitext(os.path.basename(source))[0])
        write_atomically(target, lambda temporary: _copy_verified(source, temporary), overwrite=False,
                         commit=move_no_clobber)
        return ModelEntry(target, manifest, shipped=False)

    def remove(self, entry: ModelEntry) -> None:
        """Delete a user model file (shipped models cannot be removed)."""
        if entry.shipped or os.path.dirname(os.path.abspath(entry.path)) != os.path.abspath(self.user_dir):
            raise BATsegError(f"{entry.label} is not a user-added model and cannot be removed")
        os.remove(entry.path)

    def new_model_path(self, base_name: str) -> str:
        """A free path in the user models folder for a fine-tuned model derived from `base_name`."""
        os.makedirs(self.user_dir, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return self._unique_path(f"{_safe(base_name)}-finetuned-{stamp}")

    def _unique_path(self, stem: str) -> str:
        candidate = os.path.join(self.user_dir, stem + MODEL_SUFFIX)
        number = 2
        while os.path.exists(candidate):
            candidate = os.path.join(self.user_dir, f"{stem}-{number}{MODEL_SUFFIX}")
            number += 1
        return candidate


def _copy_verified(source: str, copy: Path) -> None:
    """Copy a model file and verify the copy: the copy, not only the source, must be intact."""
    shutil.copyfile(source, copy)
    verify(str(copy))


def _safe(name: str) -> str:
    """A file-name-safe version of a model name."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.")
    return cleaned or "model"


def default_user_models_dir() -> str:
    """The user models folder: the engine's ($BATSEG_MODELS_DIR, else ~/.batseg/models), so that a
    model added or fine-tuned in Slicer is also found by `batseg predict --model NAME`."""
    return str(user_models_dir())
