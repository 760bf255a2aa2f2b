"""Placeholder for SimpleITK on the GPU machine, used by scripts/gpu/checks.sh only.

The device machine's image has no SimpleITK, and its wheel (53 MB) does not fit in one transfer
with the working tree (64 MiB in all). The GPU checks time network steps on arrays and read no
image file, but nnU-Net imports SimpleITK when its image-I/O registry is imported. This module
lets that import succeed; any use of SimpleITK fails loudly, so a check that did need it cannot
pass silently.
"""


def __getattr__(name: str):
    raise RuntimeError(f"SimpleITK.{name}: SimpleITK is not installed on this machine (GPU-check placeholder)")
