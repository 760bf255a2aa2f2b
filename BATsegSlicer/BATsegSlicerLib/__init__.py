"""BATsegSlicerLib: everything the BATsegSlicer module does, without its widget.

One concern per file: `logic` (MRML in/out, the Logic class), `jobs` and `process` (the child
process running the engine), `commands` (its command lines), `segmentation` (label map <->
segmentation node), `terminology` (SNOMED CT codes), `storage` (file I/O), `lesion_report`
(results table), `probability` (uncertainty overlay), `ai_output` (what the AI produced),
`export` (cases for retraining), `models` (model files), `install` (dependencies), `gpu`
(device probe), `parameter_node`, `sample_data`, `files`. Needs `slicer`, `vtk` and `numpy`
only; never `qt`, and never torch in Slicer's own process.
"""

from BATsegSlicerLib.commands import PredictOptions
from BATsegSlicerLib.jobs import Job, JobState
from BATsegSlicerLib.logic import BATsegLogic, SegmentationResult

__all__ = ["BATsegLogic", "Job", "JobState", "PredictOptions", "SegmentationResult"]
