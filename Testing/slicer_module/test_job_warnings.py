"""Warnings of an engine run (job_warnings.py): each kept once, in order, from log events, the
result event and stderr; the disclaimer the panel always shows is left out; other stderr
lines and ordinary log lines are not warnings."""

from __future__ import annotations

from BATsegSlicerLib.job_warnings import RunWarnings

ORIENTATION = "the image has axial slices but the model was trained on sagittal slices"
GPU = "the GPU ran out of memory; predicting this image again on the CPU (slower)"


def test_a_logged_case_warning_repeated_by_the_result_is_kept_once_without_the_case():
    warnings = RunWarnings()
    warnings.add_log_message(f"warning: {GPU}")
    warnings.add_log_message(f"warning: input: {ORIENTATION}")
    warnings.add_result_event({"event": "result", "case": "input", "warnings": [ORIENTATION]})
    assert warnings.messages == [GPU, ORIENTATION]


def test_result_warnings_without_a_logged_copy_are_kept():
    warnings = RunWarnings()
    warnings.add_result_event({"event": "result", "case": "input", "warnings": [ORIENTATION, ""]})
    warnings.add_result_event({"event": "result", "warnings": ORIENTATION})  # a single string, again
    assert warnings.messages == [ORIENTATION]


def test_the_disclaimer_shown_elsewhere_is_left_out():
    disclaimer = "Research software. Not for clinical use."
    warnings = RunWarnings(shown_elsewhere=[disclaimer, ""])
    warnings.add_log_message(f"warning: {disclaimer}")
    warnings.add_log_message(f"warning:   {disclaimer.upper()}  ")  # spacing and case do not matter
    assert warnings.messages == []


def test_only_warning_lines_count():
    warnings = RunWarnings()
    warnings.add_log_message("reading the image")
    warnings.add_log_message("warning:")  # nothing after the prefix
    warnings.add_log_message("WARNING: fine-tuning on the new cases alone")
    warnings.add_stderr_line("/x/torch/nn.py:12: UserWarning: a library's own warning")
    warnings.add_stderr_line("warning: not the engine's stderr form")
    warnings.add_stderr_line(f"batseg: warning: {GPU}")
    warnings.add_log_message(f"warning: {GPU}")  # the same warning by another route
    assert warnings.messages == ["fine-tuning on the new cases alone", GPU]
