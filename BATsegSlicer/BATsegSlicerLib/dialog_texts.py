"""What the panel's dialogs say: the questions asked before acting, the notices after, and the
titles of the error boxes. Built here, without Qt, so that tests read the exact texts users see.

Decisions:
- Nothing slow or destructive starts without a question that says what will happen: installing
  (what is downloaded, that Slicer's own SimpleITK, numpy and requests are kept), deleting a
  model file (its path), fine-tuning (`fine_tune_question`: the budget and its expected duration,
  from the engine's `batseg.training.budget`, which the engine's run uses too, so the user sees
  "2,500 iterations: about 1.9 h" before hours of CPU start).
- An error box's title says what did not happen ("The model was not removed."); the error itself
  follows it (slicer.util.tryWithErrorDisplay).
"""

from __future__ import annotations

SEGMENTATION_NOT_STARTED = "The segmentation could not be started."
FINE_TUNE_NOT_STARTED = "Fine-tuning could not be started."
CASE_NOT_EXPORTED = "The case was not exported."
NOT_INSTALLED = "The dependencies could not be installed."
MODEL_NOT_REMOVED = "The model was not removed."
MODEL_NOT_ADDED = "The model file was not added."
RESTART_QUESTION = "Dependencies installed. Restart Slicer now to use them?"


def offer_install_question(missing: str) -> str:
    """Asked when Segment or Fine-tune is pressed with dependencies missing (`missing`: install.describe)."""
    return f"BATseg needs: {missing}. Install now?"


def install_question(missing: str) -> str:
    """Asked when Install dependencies is pressed."""
    return (f"Install or update {missing} in Slicer's Python? This downloads "
            "packages (torch: the build for this computer's GPU, through the PyTorch extension's light-the-torch) "
            "and can take several minutes. Slicer's own SimpleITK, numpy and requests are kept.")


def remove_model_question(path: str) -> str:
    return f"Delete the model file {path}?"


def job_failed_text(title: str, error: str | None) -> str:
    """The error box of a failed run (its full log goes behind the details button)."""
    return f"{title} failed: {error}"


def fine_tuned_notice(label: str) -> str:
    return f"The fine-tuned model {label} was added and selected."


def fine_tune_question(manifest: dict, folder: str, cases: int, epochs: int, device: str = "auto",
                       replay_data: str = "", cuda_available: bool | None = None) -> str:
    """The confirmation asked before fine-tuning: what runs, on what budget, for about how long.

    `manifest`: the selected model's; `device`: the panel's choice ("auto" runs on the GPU when the
    GPU probe found one, `cuda_available`); the budget is the model's own (the engine inherits it)
    with the panel's epochs."""
    from batseg.training.budget import finetune_plan

    if device == "auto":
        device = "cuda" if cuda_available else "cpu"
    plan = finetune_plan(manifest, cases, epochs, device, replay=True, replay_dir=replay_data or None)
    replay = (f", mixed with the original training data in {replay_data}" if replay_data
              else ", mixed with the model's original training data where it can be found or regenerated")
    where = "a GPU" if device == "cuda" else "the CPU"
    return (f"Fine-tune the selected model on the {cases} exported case(s) in {folder}{replay}, on {where}?\n\n"
            f"{plan[0].upper()}{plan[1:]}.\n\nThe new model is added to the model list; the original is kept.")
