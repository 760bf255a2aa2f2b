"""Hard-negative patches: after preprocessing, tumour-free phantoms (T1 Gd and T2) carry cord
locations that nnU-Net's own data loader centres its oversampled patches on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batseg.phantoms.dataset import write_dataset
from batseg.progress import Progress
from batseg.training.datasets import read_raw_dataset
from batseg.training.negative_sampling import CORD_KEY
from batseg.training.plans import CONFIGURATION
from batseg.training.run import prepare_data
from batseg.training.workdir import activate

PATCH = (8, 32, 32)


def prepare(tmp_path: Path, with_cord_masks: bool = True) -> tuple[Path, str, list[str]]:
    """Three phantoms (seed 3: one tumour case, one healthy T1 Gd, one healthy T2) imported and
    preprocessed by `batseg train`'s data step; returns the preprocessed folder, plans and log."""
    data = write_dataset(tmp_path / "data", 3, seed=3, healthy_fraction=0.34, t2_fraction=0.34, matrix=96, n_slices=9)
    if not with_cord_masks:  # a user's own dataset: images and labels only
        for mask in (data / "cordTr").iterdir():
            mask.unlink()
    said: list[str] = []
    progress = Progress("quiet")
    progress.log = said.append  # type: ignore[method-assign]
    workdir = activate(tmp_path / "work")
    prep = prepare_data(read_raw_dataset(data), workdir, "light", progress)
    return workdir.preprocessed / prep.dataset_name, prep.plans_identifier, said


@pytest.fixture(autouse=True)
def one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("nnUNet_def_n_proc", "1")


def loader_for(folder: Path, identifier: str):
    """nnU-Net's training loader on the preprocessed cases, every sample foreground-forced."""
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    cases = folder / f"{identifier}_{CONFIGURATION}"
    dataset = infer_dataset_class(str(cases))(str(cases))
    labels = PlansManager(str(folder / f"{identifier}.json")).get_label_manager(load_json(str(folder / "dataset.json")))
    return nnUNetDataLoader(dataset, 1, PATCH, PATCH, labels, oversample_foreground_percent=1.0), dataset


def test_tumour_free_cases_sample_patches_on_the_cord(tmp_path: Path) -> None:
    folder, identifier, said = prepare(tmp_path)
    loader, dataset = loader_for(folder, identifier)
    with_cord = {}
    for case in dataset.identifiers:
        _, _, _, properties = dataset.load_case(case)
        locations = properties["class_locations"]
        tumour = any(len(v) for k, v in locations.items() if k != CORD_KEY)
        with_cord[case] = CORD_KEY in locations
        assert with_cord[case] != tumour, case  # healthy cases get cord locations, tumour cases keep theirs
        if tumour:
            continue
        cord = np.asarray(locations[CORD_KEY])[:, 1:]
        shape = dataset.load_case(case)[0].shape[1:]
        for _ in range(10):
            lbs, ubs = loader.get_bbox(shape, True, locations)
            inside = np.all((cord >= lbs) & (cord < ubs), axis=1)
            assert inside.any(), case  # nnU-Net's loader centred the patch on a cord voxel
    assert sum(with_cord.values()) == 2
    assert any("2 tumour-free case(s) centre their oversampled patches on the spinal cord" in s for s in said)


def test_cases_without_a_cord_mask_are_left_as_nnunet_made_them(tmp_path: Path) -> None:
    folder, identifier, said = prepare(tmp_path, with_cord_masks=False)
    _, dataset = loader_for(folder, identifier)
    for case in dataset.identifiers:
        assert CORD_KEY not in dataset.load_case(case)[3]["class_locations"]
    assert not any("spinal cord" in s for s in said)
