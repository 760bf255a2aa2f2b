"""scripts/make_real_insertions.py: which tumour type each background carries.

0.7.0 and 0.8.0 were trained on splits where the type cycled with the background (each training
background always carried one type; the held-out sct_t1w only meningiomas and astrocytomas). The
default now gives every background every type in equal numbers; the old pairing stays reachable
with --types-by-background so the shipped models' data can be rebuilt."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import pytest
from inference_helpers import REAL_DATA

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_real_insertions.py"
spec = importlib.util.spec_from_file_location("make_real_insertions", SCRIPT)
insertions = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = insertions  # its dataclasses look their module up there
spec.loader.exec_module(insertions)


@pytest.mark.parametrize("backgrounds", [2, 4])
def test_every_background_carries_every_type_equally(backgrounds: int) -> None:
    cases = 4 * backgrounds * 3
    pairs = Counter((index % backgrounds, insertions.lesion_type(index, backgrounds)) for index in range(cases))
    assert set(pairs) == {(b, t) for b in range(backgrounds) for t in insertions.TYPES}
    assert set(pairs.values()) == {3}


def test_the_old_pairing_ties_types_to_backgrounds() -> None:
    # The pairing 0.7.0 and 0.8.0 were made with: type = index % 4, whatever the backgrounds.
    old = [insertions.lesion_type(index, 4, by_background=True) for index in range(8)]
    assert old == [1, 2, 3, 4, 1, 2, 3, 4]
    training = {(index % 4, insertions.lesion_type(index, 4, by_background=True)) for index in range(40)}
    assert len(training) == 4  # one type per training background: the confound the default removes


def test_a_held_out_split_puts_all_four_types_on_each_background(tmp_path: Path) -> None:
    if not (REAL_DATA / "sct_testing_data" / "t1" / "t1w.nii.gz").is_file():
        pytest.skip(f"real scans missing: {REAL_DATA} (a clone without ../shared)")
    if insertions.REAL.resolve() != REAL_DATA.resolve():
        pytest.skip(f"the script reads ../shared beside the repository, not {REAL_DATA}")
    insertions.write_split(tmp_path, "test", 8, seed=2, t2_negative=0.0, healthy=0.0)
    record = json.loads((tmp_path / "Dataset512_BATsegRealInsertTest" / "insertions.json").read_text())
    assert record["types_by_background"] is False
    carried: dict[str, set[int]] = {}
    for meta in record["cases"].values():
        carried.setdefault(meta["background"], set()).update(lesion["type"] for lesion in meta["lesions"])
    assert carried == {"sct_t1w": {1, 2, 3, 4}, "errsm_24_t2": {1, 2, 3, 4}}
