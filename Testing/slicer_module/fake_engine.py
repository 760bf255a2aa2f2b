"""A stand-in for `python -m batseg ...` used by the process tests: it follows the engine's
child-process contract (BATSEG events on stdout, exit 0 / 2 / other, output files named after
the input) without a network, so the runner and the Logic can be tested quickly.

Behaviour is chosen with the BATSEG_FAKE_MODE environment variable:
  events      a few stages, progress and log events (two of them warnings), then exit 0 (no files)
  sleep       start a grandchild that sleeps, report its pid, then report progress forever
  usererror   print a line, then 'batseg: error: ...' on stderr and exit 2
  crash       a traceback on stderr and exit 1
  predict     read -i, write CASE.nii.gz (a labelled box on the input grid), CASE.report.json
              and, with --save-probabilities, CASE.probabilities.nii.gz; exit 0
  wronggrid   like predict, but the label map's spacing differs from the input's
  warnings    like predict, with the engine's warnings as `batseg predict --progress json` emits
              them: a GPU out-of-memory log line, the model's disclaimer, the per-case
              orientation warning logged as "CASE: ..." and repeated in the result event
  empty       like predict, but nothing is found (no lesion, overall type "none")
  The predict-like modes report a cord signal (the reference of each lesion's enhancement), or none
  (cord_signal null, as when the engine found no cord) when BATSEG_FAKE_NO_CORD is set.
  train       copy the --finetune-from model file to --output (a valid model file), logging the
              --replay-data folder when one is given; exit 0
"""

import json
import os
import subprocess
import sys
import time


def event(**fields):
    print("BATSEG " + json.dumps(fields), flush=True)


def argument(flag):
    args = sys.argv[1:]
    return args[args.index(flag) + 1]


ORIENTATION_WARNING = "the image has axial slices (5.00 mm apart) but the model was trained on sagittal slices"
GPU_WARNING = "the GPU ran out of memory; predicting this image again on the CPU (slower)"
LESION = {"id": 1, "type_name": "Ependymoma", "type_probability": 0.8, "tumour_probability": 0.93, "enhancement": 1.8,
          "volume_cm3": 1.0, "extent_mm": {"left_right": 10.0, "anterior_posterior": 10.0, "superior_inferior": 10.0},
          "slice_first": 11, "slice_last": 20, "centroid_ras_mm": [1.0, 2.0, 3.0]}
CORD_SIGNAL = 400.0


def predict(mode="predict"):
    import numpy as np
    import SimpleITK as sitk

    source, out_dir = argument("-i"), argument("-o")
    case = os.path.basename(source)[: -len(".nii.gz")]
    event(event="stage", stage="read", status="start")
    image = sitk.ReadImage(source)
    event(event="stage", stage="read", status="end", seconds=0.01)
    labels = np.zeros(sitk.GetArrayFromImage(image).shape, np.uint8)
    if mode != "empty":
        labels[10:20, 12:22, 14:24] = 2
    if mode == "warnings":
        event(event="log", message="warning: " + GPU_WARNING)
    out = sitk.GetImageFromArray(labels)
    out.CopyInformation(image)
    if mode == "wronggrid":
        out.SetSpacing([s * 1.5 for s in image.GetSpacing()])
    if mode == "warnings":  # the real engine shows the model's disclaimer just before writing
        from batseg.model_file import DISCLAIMER

        event(event="log", message="warning: " + DISCLAIMER)
    sitk.WriteImage(out, os.path.join(out_dir, case + ".nii.gz"))
    found = mode != "empty"
    cord = "BATSEG_FAKE_NO_CORD" not in os.environ
    lesion = LESION if cord else {**LESION, "enhancement": None}
    report = {"case_id": case, "overall_type_name": "Ependymoma" if found else "none", "disclaimer": "test",
              "cord_signal": CORD_SIGNAL if cord else None, "lesions": [lesion] if found else []}
    with open(os.path.join(out_dir, case + ".report.json"), "w") as handle:
        json.dump(report, handle)
    if "--save-probabilities" in sys.argv:
        probabilities = np.zeros(labels.shape + (4,), np.float32)
        probabilities[..., 1] = (labels == 2) * 0.9
        probabilities[..., 0] = 0.05
        vector = sitk.GetImageFromArray(probabilities, isVector=True)
        vector.CopyInformation(image)
        sitk.WriteImage(vector, os.path.join(out_dir, case + ".probabilities.nii.gz"))
    warnings = []
    if mode == "warnings":
        warnings = [ORIENTATION_WARNING]
        event(event="log", message=f"warning: {case}: {ORIENTATION_WARNING}")
    event(event="result", case=case, outputs={"labels": case + ".nii.gz"}, warnings=warnings)


def main():
    mode = os.environ.get("BATSEG_FAKE_MODE", "events")
    if mode == "events":
        event(event="stage", stage="load", status="start")
        event(event="stage", stage="load", status="end", seconds=0.25)
        for done in range(1, 4):
            event(event="progress", stage="predict", done=done, total=3)
        print("a plain log line", flush=True)
        event(event="log", message="hello from the engine")
        event(event="log", message="WARNING: fine-tuning writes its warnings in capitals")
        sys.stderr.write("batseg: warning: outside json mode a warning is a stderr line\n")
        sys.stderr.flush()
        event(event="result", outputs={"labels": "x.nii.gz"})
    elif mode == "sleep":
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        event(event="log", message=f"grandchild {grandchild.pid}")
        event(event="stage", stage="predict", status="start")
        for done in range(1200):
            event(event="progress", stage="predict", done=done, total=1200)
            time.sleep(0.1)
    elif mode == "usererror":
        print("checking the input", flush=True)
        sys.stderr.write("batseg: error: input.nii.gz is 2-D: pass a 3-D volume\n")
        sys.exit(2)
    elif mode == "crash":
        sys.stderr.write("Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: boom\n")
        sys.exit(1)
    elif mode == "train":
        import shutil

        event(event="stage", stage="train", status="start")
        if "--replay-data" in sys.argv:
            event(event="log", message=f"replay data: {argument('--replay-data')}")
        shutil.copyfile(argument("--finetune-from"), argument("--output"))
        event(event="stage", stage="train", status="end", seconds=0.01)
    elif mode in ("predict", "wronggrid", "warnings", "empty"):
        predict(mode)


if __name__ == "__main__":
    main()
