"""What the panel says after a run: the results line and the status line with the run's warnings.

The texts are built here (no qt) so that they are tested headless; the Widget only puts them
on its labels.

Decisions:
- An empty result never says "no tumour": the model only reports lesions of at least the
  minimum volume, and the shipped model misses lesions (see its held-out figures), so the text
  names the minimums actually applied (the volume; the tumour probability and enhancement when
  the model sets them) and asks the user to review the image. An enhancement minimum also removes
  a non-enhancing tumour (an astrocytoma can be one), so the text then says so.
- The case's overall type (the type with the largest tumour volume, `overall_type_name` of the
  engine's report) is named when there is a lesion; lesions can differ, the table lists each.
- Warnings are shown in orange, one per line, under the status: before, they reached only the
  collapsed log, and they change how far the result can be trusted (a reoriented image, a
  fallback to the CPU). The status label is rich text, so every text is HTML-escaped here.
"""

from __future__ import annotations

import html
from typing import Iterable

WARNING_COLOUR = "#d96c00"  # orange, readable on Slicer's light and dark themes
NO_TYPE = "none"  # the report's overall type when there is no tumour


def results_summary(lesion_count: int, overall_type: str = "", min_volume_mm3: float | None = None,
                    min_tumour_probability: float = 0.0, min_enhancement: float = 0.0) -> str:
    """The line above the results table. `min_volume_mm3`: the minimum lesion volume applied
    (None when postprocessing, and so small-lesion removal, was off); `min_tumour_probability`:
    the least mean tumour probability of a kept lesion (0: none); `min_enhancement`: the least
    median signal of a kept lesion, in times the spinal cord's (0: none applied)."""
    if lesion_count <= 0:
        return no_lesion_text(min_volume_mm3, min_tumour_probability, min_enhancement)
    text = f"{lesion_count} lesion(s)."
    if overall_type and overall_type.strip().lower() != NO_TYPE:
        text += f" Overall type (largest tumour volume): {overall_type}."
    return text + " Click a row to centre the views on it."


def no_lesion_text(min_volume_mm3: float | None, min_tumour_probability: float = 0.0,
                   min_enhancement: float = 0.0) -> str:
    """Said when the model reported nothing: what was looked for, and that it can miss lesions."""
    if min_volume_mm3 is None:  # postprocessing off: no minimum was applied
        return "The model reported no lesion. This model can miss lesions: review the image."
    conditions = []
    if min_tumour_probability > 0:
        conditions.append(f"a mean tumour probability of at least {min_tumour_probability:g}")
    if min_enhancement > 0:
        conditions.append(f"a median signal of at least {min_enhancement:g} times the spinal cord's")
    looked_for = f"no lesion of at least {min_volume_mm3:g} mm3"
    if conditions:
        looked_for += " with " + " and ".join(conditions)
    # The enhancement minimum removes a non-enhancing tumour too: the likeliest miss when it applied.
    missed = "lesions, non-enhancing ones among them" if min_enhancement > 0 else "lesions"
    return f"The model reported {looked_for}. This model can miss {missed}: review the image."


def status_html(status: str, warnings: Iterable[str] = ()) -> str:
    """The status label's rich text: the status, then each warning on its own line in orange."""
    text = html.escape(status)
    lines = [f"Warning: {html.escape(warning)}" for warning in warnings]
    if lines:
        text += f'<br><span style="color:{WARNING_COLOUR}">' + "<br>".join(lines) + "</span>"
    return text
