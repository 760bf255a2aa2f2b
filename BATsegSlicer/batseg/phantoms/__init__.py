"""Synthetic spinal cord tumour phantoms (sagittal T1 Gd-like MRI with labels and cord masks).

No public spinal cord tumour MRI exists, so BATseg's shipped model is trained on these
phantoms: synthetic data, not for clinical use. One concern per module:
tissues (signal table), fields (random smooth fields), shapes (tubes along the axis),
spine (healthy anatomy parameters), anatomy (painting tissues), tumours (lesions and their
effects), acquisition (MR simulation and geometry), render (partial volume and labels),
case (`generate_case`), dataset (`write_dataset`, nnU-Net layout), samples (bundled cases).
"""

from batseg.phantoms.case import PhantomCase, generate_case

__all__ = ["PhantomCase", "generate_case"]
