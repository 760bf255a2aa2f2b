"""The texts the panel shows after a run (run_summary.py): the results line names the overall
type when there is a lesion and, when there is none, the minimum volume applied and that the
model can miss lesions; the status line lists warnings in orange, HTML-escaped."""

from __future__ import annotations

from BATsegSlicerLib.run_summary import WARNING_COLOUR, results_summary, status_html


def test_results_line_names_the_overall_type():
    assert results_summary(2, "Spinal ependymoma", 20.0) == (
        "2 lesion(s). Overall type (largest tumour volume): Spinal ependymoma. Click a row to centre the views on it.")
    assert results_summary(1, "none") == "1 lesion(s). Click a row to centre the views on it."
    assert results_summary(1, "") == "1 lesion(s). Click a row to centre the views on it."


def test_empty_result_does_not_claim_there_is_no_tumour():
    text = results_summary(0, "none", 1000.0)
    assert text == "The model reported no lesion of at least 1000 mm3. This model can miss lesions: review the image."
    assert "No tumour" not in text
    assert results_summary(0, "", 12.5).startswith("The model reported no lesion of at least 12.5 mm3.")
    assert results_summary(0, "", None) == "The model reported no lesion. This model can miss lesions: review the image."
    assert results_summary(0, "", 200.0, 0.8).startswith(
        "The model reported no lesion of at least 200 mm3 with a mean tumour probability of at least 0.8.")
    assert results_summary(0, "", None, 0.8).startswith("The model reported no lesion.")  # postprocessing off
    assert results_summary(0, "", 200.0, 0.0, 1.2) == (
        "The model reported no lesion of at least 200 mm3 with a median signal of at least 1.2 times the spinal "
        "cord's. This model can miss lesions, non-enhancing ones among them: review the image.")
    assert results_summary(0, "", 200.0, 0.8, 1.2).startswith(
        "The model reported no lesion of at least 200 mm3 with a mean tumour probability of at least 0.8 and a median "
        "signal of at least 1.2 times the spinal cord's.")
    assert results_summary(0, "", None, 0.8, 1.2) == (
        "The model reported no lesion. This model can miss lesions: review the image.")  # postprocessing off
    assert results_summary(1, "Astrocytoma", 200.0, 0.8, 1.2).startswith("1 lesion(s).")


def test_status_lists_each_warning_on_its_own_line_in_orange():
    assert status_html("BATseg segmentation: succeeded (1.0 s)") == "BATseg segmentation: succeeded (1.0 s)"
    text = status_html("done", ["first", "the image <axial> & resampled"])
    assert text == (f'done<br><span style="color:{WARNING_COLOUR}">Warning: first<br>'
                    "Warning: the image &lt;axial&gt; &amp; resampled</span>")
    assert status_html("a <b> in a volume name") == "a &lt;b&gt; in a volume name"
