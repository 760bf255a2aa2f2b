"""batseg: the BATseg engine (network, targets, losses, training, inference, metrics, phantoms).

Pure Python (torch, numpy, scipy, SimpleITK, nnU-Net v2). It never imports Slicer, so the same
code serves the command line (`batseg ...`), the Slicer module (through a child process) and
the benchmarks.
"""

__version__ = "0.1.0"
