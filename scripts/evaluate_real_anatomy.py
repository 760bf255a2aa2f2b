"""A model on real anatomy: lesions inserted into held-out real backgrounds, and unaltered real scans.

Runs the product as a user would (`batseg predict`, default postprocessing of the model, then
`batseg evaluate`) on the data sets of scripts/make_real_insertions.py, and prints one table:

- held-out insertions (backgrounds no training split contains): detection of every lesion
  (>= 6 mm3 overlap), detection and type accuracy of the lesions of at least 0.5 cm3, Dice per
  type, and reported lesions that match no inserted lesion (false lesions per scan);
- unaltered real scans of ../shared (no lesion), as distributed and on a clinical sagittal grid:
  lesions reported on each, and the report's warnings.

    python scripts/evaluate_real_anatomy.py --model MODEL.batseg --data WORK_DIR --out WORK_DIR/eval_NAME

WORK_DIR holds real_test/Dataset512_BATsegRealInsertTest and real_unaltered/{distributed,resliced}.
Writes OUT/real_anatomy.json (every figure of the table) and prints the table as Markdown.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from batseg.inference.case_cord import CONTRAST_UNCHECKED

LARGE_MM3 = 500.0
TYPES = ("meningioma", "ependymoma", "astrocytoma", "hemangioblastoma")


def _batseg(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "batseg", *args], capture_output=True, text=True)
    if result.returncode not in (0,):
        sys.exit(f"batseg {args[0]} failed: {result.stderr.strip()}")


PREDICT_ARGS: list[str] = []  # --predict-args, e.g. "--no-crop --no-cord-locator" for the whole-volume path


def _predict(model: Path, images: Path, out: Path) -> None:
    _batseg("predict", "-i", str(images), "-o", str(out), "--model", str(model), "--device", "cpu",
            "--overwrite", "--progress", "quiet", *PREDICT_ARGS)


def insertion_figures(model: Path, dataset: Path, out: Path) -> dict[str, Any]:
    """Detection, type accuracy and Dice on the held-out insertions (module docstring)."""
    _predict(model, dataset / "imagesTr", out / "pred_insert")
    _batseg("evaluate", "--pred", str(out / "pred_insert"), "--gt", str(dataset / "labelsTr"),
            "-o", str(out / "eval_insert.json"), "--overwrite")
    cases = json.loads((out / "eval_insert.json").read_text())["cases"]
    inserted = json.loads((dataset / "insertions.json").read_text())["cases"]
    rows = []
    for name, result in cases.items():
        det = result["detection"]
        true_type = next(iter(result["classes"]), None)
        confusion = det["type_confusion"]
        typed_right = bool(det["types_correct"]) if det["types_assessed"] else None
        rows.append({"case": name, "background": inserted[name]["background"], "type": true_type,
                     "volume_mm3": det["gt_volume_mm3"], "detected": det["detected_lesions"] > 0,
                     "typed_right": typed_right, "false_lesions": det["false_positive_lesions"],
                     "dice": result["classes"][true_type]["dice"] if true_type else None,
                     "confusion": confusion})
    return {"cases": rows, "summary": _summarise(rows)}


def _rate(hits: list[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def _per_type(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per tumour type: lesions, lesions >= 0.5 cm3, their detection and the mean Dice (None where none)."""
    figures = {}
    for key in TYPES:
        own = [r for r in rows if r["type"] == key]
        large = [r for r in own if r["volume_mm3"] >= LARGE_MM3]
        figures[key] = {"lesions": len(own), "large_lesions": len(large),
                        "large_detected": _rate([r["detected"] for r in large]),
                        "dice": sum(r["dice"] for r in own) / len(own) if own else None}
    return figures


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    large = [r for r in rows if r["volume_mm3"] >= LARGE_MM3]
    summary: dict[str, Any] = {
        "lesions": len(rows),
        "detected": _rate([r["detected"] for r in rows]),
        "large_lesions": len(large),
        "large_detected": _rate([r["detected"] for r in large]),
        "large_type_accuracy": _rate([r["typed_right"] for r in large if r["detected"]]),
        "type_accuracy": _rate([r["typed_right"] for r in rows if r["detected"]]),
        "false_lesions_per_scan": sum(r["false_lesions"] for r in rows) / max(len(rows), 1),
        "dice_per_type": {key: figures["dice"] for key, figures in _per_type(rows).items()},
        "by_background": {},
    }
    for background in sorted({r["background"] for r in rows}):
        own = [r for r in rows if r["background"] == background]
        own_large = [r for r in own if r["volume_mm3"] >= LARGE_MM3]
        summary["by_background"][background] = {
            "lesions": len(own), "detected": _rate([r["detected"] for r in own]),
            "large_detected": _rate([r["detected"] for r in own_large]),
            "large_type_accuracy": _rate([r["typed_right"] for r in own_large if r["detected"]]),
            # Per type within a background: a type's figure is not a background's in disguise.
            "per_type": _per_type(own)}
    return summary


def unaltered_figures(model: Path, folder: Path, out: Path) -> dict[str, Any]:
    """Lesions reported on each unaltered real scan, as distributed and resliced."""
    found: dict[str, Any] = {}
    for kind in ("distributed", "resliced"):
        _predict(model, folder / kind / "imagesTr", out / f"pred_unaltered_{kind}")
        for report in sorted((out / f"pred_unaltered_{kind}").glob("*.report.json")):
            data = json.loads(report.read_text())
            name = report.name[: -len(".report.json")]
            found.setdefault(name, {})[kind] = {
                "lesions": data["lesion_count"],
                "volumes_mm3": [round(1000.0 * lesion["volume_cm3"], 1) for lesion in data["lesions"]],
                # The T2 call (the image or the metadata says T2), apart from "could not be checked".
                "contrast_warning": any("T2" in w for w in data.get("warnings", []) if w != CONTRAST_UNCHECKED),
                "contrast_unchecked": CONTRAST_UNCHECKED in data.get("warnings", []),
                "fluid_to_cord_ratio": (data.get("contrast_check") or {}).get("fluid_to_cord_ratio"),
                "warnings": data.get("warnings", [])}
    return found


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def per_type_table(summary: dict[str, Any]) -> list[str]:
    """Lines of a table per held-out background and type: lesions >= 0.5 cm3 detected, and Dice."""
    lines = ["", "| background | type | >= 0.5 cm3 detected | Dice |", "|---|---|---|---|"]
    for background, b in summary["by_background"].items():
        for key, t in (b.get("per_type") or {}).items():
            if t["lesions"]:
                dice = "n/a" if t["dice"] is None else f"{t['dice']:.2f}"
                lines.append(f"| {background} | {key} | {_pct(t['large_detected'])} of {t['large_lesions']} | {dice} |")
    return lines


def markdown(model: Path, insert: dict[str, Any], unaltered: dict[str, Any]) -> str:
    s = insert["summary"]
    lines = [f"Model: {model.name}", "",
             "| held-out insertions | value |", "|---|---|",
             f"| lesions (all sizes) detected | {_pct(s['detected'])} of {s['lesions']} |",
             f"| lesions >= 0.5 cm3 detected | {_pct(s['large_detected'])} of {s['large_lesions']} |",
             f"| type accuracy, detected lesions >= 0.5 cm3 | {_pct(s['large_type_accuracy'])} |",
             f"| false lesions per scan | {s['false_lesions_per_scan']:.2f} |"]
    lines += [f"| Dice {key} | {'n/a' if v is None else f'{v:.2f}'} |" for key, v in s["dice_per_type"].items()]
    for background, b in s["by_background"].items():
        lines.append(f"| {background}: detected / >= 0.5 cm3 detected / typed right | "
                     f"{_pct(b['detected'])} / {_pct(b['large_detected'])} / {_pct(b['large_type_accuracy'])} |")
    lines += per_type_table(s)
    lines += ["", "| unaltered real scan | lesions as distributed | lesions resliced | T2 warning (distributed / resliced) |",
              "|---|---|---|---|"]
    for name, kinds in unaltered.items():
        cells = [str(kinds.get(k, {}).get("lesions", "n/a")) for k in ("distributed", "resliced")]
        warned = " / ".join(contrast_cell(kinds.get(k, {})) for k in ("distributed", "resliced"))
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {warned} |")
    return "\n".join(lines)


def contrast_cell(version: dict[str, Any]) -> str:
    """What a scan version was told about its contrast: yes (T2), unchecked (no cord to measure) or no."""
    if version.get("contrast_warning"):
        return "yes"
    return "unchecked" if version.get("contrast_unchecked") else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--predict-args", default="",
                        help='extra `batseg predict` options, e.g. "--no-crop --no-cord-locator" (the whole volume)')
    args = parser.parse_args()
    PREDICT_ARGS.extend(args.predict_args.split())
    args.out.mkdir(parents=True, exist_ok=True)
    insert = insertion_figures(args.model, args.data / "real_test" / "Dataset512_BATsegRealInsertTest", args.out)
    unaltered = unaltered_figures(args.model, args.data / "real_unaltered", args.out)
    (args.out / "real_anatomy.json").write_text(json.dumps({"model": args.model.name, "insertions": insert,
                                                            "unaltered": unaltered}, indent=1))
    print(markdown(args.model, insert, unaltered))


if __name__ == "__main__":
    main()
