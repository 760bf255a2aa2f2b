"""How long `batseg predict` takes per scan on a laptop-class CPU, by network topology, as measured.

The Slicer panel shows this beside the model choice, so that a user knows before pressing Apply
whether a model is a matter of seconds or of minutes on their computer. The figures are the
warm medians of `batseg benchmark` (a fresh process per run, from the file to the label map and
the report, 15 x 512 x 512 voxels of 3.6 x 0.5 x 0.5 mm, 2 threads) on the project's reference
machine (2 CPU cores); they are committed with the commands that made them in
docs/figures/benchmark_*.json, and a test checks that the constants below match those files.
Another computer differs; a GPU is much faster.

Pure Python: the panel imports it in Slicer's own Python.
"""

from __future__ import annotations

from typing import Any

# topology -> (the default path: the cord locator and the cascade crop, the whole volume with
# --no-crop) seconds.
MEASURED_CPU_SECONDS: dict[str, tuple[float, float]] = {"light": (3.5, 8.3), "paper": (22.5, 77.8)}
BENCHMARK_FILES = {"light": "benchmark_light_crop.json", "light_whole": "benchmark_light.json",
                   "paper": "benchmark_paper_crop.json", "paper_whole": "benchmark_paper_whole.json"}


def topology_of(manifest: dict[str, Any]) -> str | None:
    """The manifest's named topology ("light", "paper"), or None for another network."""
    topology = (manifest.get("architecture") or {}).get("topology")
    return topology if topology in MEASURED_CPU_SECONDS else None


def expected_text(manifest: dict[str, Any]) -> str:
    """One sentence for the panel ('' for a network of no measured topology)."""
    topology = topology_of(manifest)
    if topology is None:
        return ""
    cascade, whole = MEASURED_CPU_SECONDS[topology]
    return (f"About {_duration(cascade)} per scan on a 2-core CPU, segmenting around the spinal cord "
            f"({_duration(whole)} for the whole volume); faster on a GPU.")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"
