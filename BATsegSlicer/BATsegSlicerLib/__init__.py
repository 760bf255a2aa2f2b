"""BATsegSlicerLib: everything the BATsegSlicer module does, without its widget.

One concern per file: `logic` (MRML in/out, the Logic class), `jobs` and `process` (the child
process running the engine), `commands` (its command lines), `segmentation` (label map <->
segmentation node), `terminology` (SNOMED CT codes), `storage` (file I/O), `lesion_report`
(results table), `probability` (uncertainty overlay), `ai_output` (what the AI produced),
`export` (cases for retraining), `models` (model files), `install` (dependencies), `gpu`
(device probe), `parameter_node`, `sample_data`, `files`, `compatibility` (the supported
Slicer), `run_folders` (run folders, a crashed Slicer's leftovers). The panel's decisions, which
the Widget only renders: `panel_state` (buttons, results, module life cycle), `job_control`
(runs from button to outcome), `gpu_probe` (the GPU check), `install_flow` (dependencies),
`model_list` (the model choice), `dialog_texts` and `dialogs` (what is asked, and how).
Needs `slicer`, `vtk` and `numpy` only; never `qt`, and never torch in Slicer's own process.

Importing the package imports nothing else: `compatibility` must load on any Slicer's Python
(5.8 bundles 3.9) to say why the module cannot run there, so the names below are imported on
first use.
"""

_EXPORTS = {
    "BATsegLogic": "BATsegSlicerLib.logic",
    "SegmentationResult": "BATsegSlicerLib.logic",
    "Job": "BATsegSlicerLib.jobs",
    "JobState": "BATsegSlicerLib.jobs",
    "PredictOptions": "BATsegSlicerLib.commands",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'BATsegSlicerLib' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
