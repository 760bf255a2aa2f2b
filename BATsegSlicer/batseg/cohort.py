"""The cohort table of a `batseg predict` run (`--cohort`): OUT_DIR/cohort.csv and cohort.json.

One row per case of the run, in the order the cases ran: the cases segmented now, those whose
complete outputs an earlier run left (`--continue`: read back from their CASE.report.json), the
failed ones (with their one-line error) and the inputs skipped as label maps or masks. Columns
(`COLUMNS`): case, status, source, the model's name, version and weights sha256, the run's
settings (minimum volume, one type per lesion, postprocessing, TTA, batseg version, date),
lesion count, total and per-type volume (cm3), overall type, the number of lesions painted with
several types, the warnings (joined with " | "), the seconds the case took and its error. The
JSON holds the same rows (warnings as a list) under "cases", with the run's counts, input and
output folder, start and end (UTC), model and the research-use line. Both files are written together, all or nothing, at
the end of the run (an interrupted run writes none: rerun with --continue).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from batseg import __version__
from batseg.atomic_files import text_writer
from batseg.labels import TUMOUR_CLASSES

COHORT_CSV = "cohort.csv"
COHORT_JSON = "cohort.json"
FORMAT = "batseg-cohort"
FORMAT_VERSION = 1
STATUSES = ("segmented", "resumed", "failed", "skipped")
SETTING_COLUMNS: tuple[str, ...] = ("min_volume_mm3", "min_tumour_probability", "min_enhancement", "one_type_per_lesion",
                                    "postprocess", "tta", "batseg_version", "created")
COLUMNS: tuple[str, ...] = (
    "case", "status", "source", "model_name", "model_version", "model_weights_sha256", *SETTING_COLUMNS,
    "lesion_count", "total_volume_cm3", *(f"volume_{c.key}_cm3" for c in TUMOUR_CLASSES),
    "overall_type", "mixed_type_lesions", "warnings", "seconds", "error",
)


def row_from_report(report: dict[str, Any], status: str, seconds: float | None) -> dict[str, Any]:
    """The cohort row of a case with a lesion report (segmented now or by an earlier run)."""
    model = report.get("model") or {}
    settings = report.get("settings") or {}
    volumes = report.get("type_volumes_cm3") or {}
    return {
        "case": report.get("case_id", ""),
        "status": status,
        "source": report.get("source", ""),
        "model_name": model.get("name"),
        "model_version": model.get("version"),
        "model_weights_sha256": model.get("weights_sha256"),
        **{key: settings.get(key) for key in SETTING_COLUMNS},
        "lesion_count": report.get("lesion_count"),
        "total_volume_cm3": _rounded(report.get("total_volume_cm3")),
        **{f"volume_{c.key}_cm3": _rounded(volumes.get(c.key)) for c in TUMOUR_CLASSES},
        "overall_type": report.get("overall_type_key"),
        "mixed_type_lesions": report.get("mixed_type_lesions"),
        "warnings": list(report.get("warnings") or []),
        "seconds": _rounded(seconds, 2),
        "error": None,
    }


def row_without_report(case: str, source: str, status: str, error: str, seconds: float | None = None) -> dict[str, Any]:
    """The cohort row of a case that failed or was skipped: its name, source and why."""
    row: dict[str, Any] = {column: None for column in COLUMNS}
    row.update(case=case, status=status, source=source, warnings=[], error=error, seconds=_rounded(seconds, 2))
    return row


def _rounded(value: Any, digits: int = 6) -> Any:
    return round(float(value), digits) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def csv_text(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV text (empty cells for missing values, warnings joined with " | ")."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(column, row.get(column)) for column in COLUMNS])
    return buffer.getvalue()


def _cell(column: str, value: Any) -> Any:
    if value is None:
        return ""
    if column == "warnings":
        return " | ".join(" ".join(str(w).split()) for w in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def cohort_document(rows: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: format, run facts, counts by status, then every row."""
    counts = {status: sum(1 for row in rows if row["status"] == status) for status in STATUSES}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "batseg_version": __version__, **run,
            "counts": {"cases": len(rows), **counts}, "columns": list(COLUMNS), "cases": rows}


def cohort_files(rows: list[dict[str, Any]], run: dict[str, Any], csv_path: Path, json_path: Path) -> list[tuple]:
    """The two files as (path, writer, suffix) for `batseg.atomic_files.write_all_or_nothing`."""
    return [
        (csv_path, text_writer(csv_text(rows)), ""),
        (json_path, text_writer(json.dumps(cohort_document(rows, run), indent=2) + "\n"), ""),
    ]


def is_own_table(path: Path) -> bool:
    """True when `path` is a cohort file written by batseg (so `--continue` may replace it).

    The JSON must declare FORMAT; the CSV must start with this or an earlier version's header
    (case,status,...). A file a user wrote, or edited into another shape, is not ours.
    """
    try:
        if path.name == COHORT_JSON or path.suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8")).get("format") == FORMAT
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
        return header == list(COLUMNS)
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False
