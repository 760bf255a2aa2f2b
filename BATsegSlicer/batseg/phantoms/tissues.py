"""Tissue classes of the phantom anatomy and their signal (T1 Gd: fat = 1; T2: CSF = 1).

The anatomy renderer paints one tissue id per fine-grid sample; this module turns ids into
signal. Values follow METHOD.md section 6 (sagittal T1 after gadolinium): fat and fatty marrow
bright, cord intermediate, CSF dark, discs and muscle intermediate to dark, basivertebral veins,
epidural venous plexus and dura enhancing slightly. Each case draws its own values around these
means (patient age changes marrow fat, sequence and field strength change the contrasts) and a
per-tissue texture amplitude modulates them with a smooth random field, so that the network
cannot learn a fixed grey value per tissue.

A second table gives sagittal T2-weighted (turbo spin echo) signal, for healthy "wrong contrast"
negatives only: CSF brightest, fat bright, cord dark against CSF (cord/CSF 0.39-0.46 on the
three real T2 scans of ../shared/data/real-spine-mri: `python scripts/t2_realism.py`, table in
docs/phantoms.md). A model for T1 Gd that never saw a T2 scan reports the bright CSF column as an
enhancing tumour (model 0.5.0 did, on both real cervico-thoracic T2 scans).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Tissue ids (uint8). Order is irrelevant; the values index the look-up tables below.
AIR, FAT, SKIN, MUSCLE, VISCERA, AIRWAY, VESSEL, MARROW, CORTEX, VEIN, DISC, LIGAMENT, \
    EPIDURAL_FAT, PLEXUS, DURA, CSF, CORD, ROOT, CYST, EDEMA, CALCIFICATION, INTERSPINOUS, FLAVUM, \
    ARCH = range(24)
NUM_TISSUES = 24

CONTRASTS = ("t1gd", "t2")

# (mean signal, half-width of the per-case uniform draw, texture amplitude)
_TISSUE_SIGNAL: dict[int, tuple[float, float, float]] = {
    AIR: (0.0, 0.0, 0.0),
    FAT: (1.0, 0.0, 0.04),
    SKIN: (0.55, 0.10, 0.05),
    MUSCLE: (0.32, 0.06, 0.12),
    VISCERA: (0.40, 0.08, 0.10),  # replaced by the organ map of render.py
    AIRWAY: (0.03, 0.02, 0.0),
    VESSEL: (0.05, 0.03, 0.0),
    MARROW: (0.70, 0.18, 0.13),  # young patients: red marrow, darker; older: fatty, brighter
    CORTEX: (0.12, 0.04, 0.0),
    VEIN: (0.88, 0.08, 0.05),  # basivertebral vein: slightly brighter than marrow after Gd
    DISC: (0.33, 0.07, 0.08),
    LIGAMENT: (0.12, 0.04, 0.0),
    EPIDURAL_FAT: (0.95, 0.05, 0.05),
    PLEXUS: (0.60, 0.12, 0.10),  # epidural venous plexus, enhancing
    DURA: (0.32, 0.06, 0.0),
    CSF: (0.15, 0.04, 0.02),
    CORD: (0.52, 0.05, 0.03),
    ROOT: (0.46, 0.05, 0.0),
    CYST: (0.19, 0.04, 0.02),  # tumour cysts and syrinx: CSF-like, a little protein
    EDEMA: (0.44, 0.04, 0.03),  # oedematous cord: slightly T1-hypointense
    CALCIFICATION: (0.08, 0.03, 0.0),
    INTERSPINOUS: (0.50, 0.15, 0.12),  # between spinous processes: ligament, fat and small muscles
    FLAVUM: (0.28, 0.06, 0.05),  # ligamentum flavum: intermediate-low
    ARCH: (0.52, 0.10, 0.12),  # laminae and spinous processes: thin bone, less marrow than bodies
}

# Sagittal T2 TSE, CSF = 1. Same keys and draw order as the T1 Gd table.
_T2_SIGNAL: dict[int, tuple[float, float, float]] = {
    AIR: (0.0, 0.0, 0.0),
    FAT: (0.70, 0.12, 0.04),  # bright on turbo spin echo (J-coupling), below CSF
    SKIN: (0.40, 0.08, 0.05),
    MUSCLE: (0.16, 0.04, 0.12),
    VISCERA: (0.40, 0.08, 0.10),  # replaced by the organ map of render.py
    AIRWAY: (0.03, 0.02, 0.0),
    VESSEL: (0.05, 0.03, 0.0),  # flow void
    MARROW: (0.45, 0.12, 0.13),
    CORTEX: (0.06, 0.03, 0.0),
    VEIN: (0.40, 0.08, 0.05),
    DISC: (0.50, 0.20, 0.08),  # bright nucleus when hydrated, dark when degenerated
    LIGAMENT: (0.06, 0.03, 0.0),
    EPIDURAL_FAT: (0.65, 0.10, 0.05),
    PLEXUS: (0.45, 0.10, 0.10),
    DURA: (0.10, 0.04, 0.0),
    CSF: (1.0, 0.08, 0.03),
    CORD: (0.33, 0.05, 0.03),
    ROOT: (0.32, 0.05, 0.0),
    CYST: (0.95, 0.05, 0.02),
    EDEMA: (0.60, 0.08, 0.03),
    CALCIFICATION: (0.05, 0.03, 0.0),
    INTERSPINOUS: (0.40, 0.12, 0.12),
    FLAVUM: (0.10, 0.04, 0.05),
    ARCH: (0.38, 0.10, 0.12),
}
_TABLES = {"t1gd": _TISSUE_SIGNAL, "t2": _T2_SIGNAL}


@dataclass(frozen=True)
class TissueSignal:
    """One case's signal and texture amplitude per tissue id (look-up tables)."""

    signal: np.ndarray  # float32 [NUM_TISSUES]
    texture: np.ndarray  # float32 [NUM_TISSUES]

    def of(self, tissue: int) -> float:
        """Mean signal of one tissue in this case."""
        return float(self.signal[tissue])


def draw_tissue_signal(rng: np.random.Generator, contrast: str = "t1gd") -> TissueSignal:
    """Draw one case's tissue signal around the means of the `contrast` table."""
    signal = np.zeros(NUM_TISSUES, np.float32)
    texture = np.zeros(NUM_TISSUES, np.float32)
    for tissue, (mean, spread, tex) in _TABLES[contrast].items():
        signal[tissue] = mean + rng.uniform(-spread, spread)
        texture[tissue] = tex * rng.uniform(0.7, 1.3)
    if contrast == "t2":
        # T2: CSF at least twice the cord (the real scans: 2.2-2.6 times, docs/phantoms.md).
        signal[CORD] = min(signal[CORD], 0.5 * signal[CSF])
        return TissueSignal(signal, texture)
    # Keep the contrasts the radiologist relies on: CSF darker than cord, cord darker than fat.
    signal[CSF] = min(signal[CSF], 0.6 * signal[CORD])
    signal[CYST] = max(signal[CYST], signal[CSF])
    signal[EDEMA] = min(signal[EDEMA], 0.92 * signal[CORD])
    signal[VEIN] = max(signal[VEIN], signal[MARROW] + 0.05)
    return TissueSignal(signal, texture)
