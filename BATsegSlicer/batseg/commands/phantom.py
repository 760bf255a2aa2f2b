"""`batseg phantom`: write a dataset of synthetic spinal cord tumour phantoms (nnU-Net v2 layout).

Synthetic data for training and testing; not for clinical use. See docs/phantoms.md.
"""

from __future__ import annotations

import argparse

from batseg.progress import Progress


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "phantom", help="write synthetic spinal tumour phantoms as an nnU-Net v2 raw dataset",
        description="Generate synthetic sagittal T1 Gd spine MRI phantoms with tumour labels (1 meningioma, "
                    "2 ependymoma, 3 astrocytoma, 4 hemangioblastoma) and cord masks, in nnU-Net v2's raw "
                    "layout (imagesTr, labelsTr, cordTr, dataset.json written last). Synthetic data; not for "
                    "clinical use.")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR",
                   help="folder that receives the dataset folder (e.g. your nnUNet_raw)")
    p.add_argument("-n", "--num-cases", type=int, required=True, metavar="N", help="number of cases")
    p.add_argument("--seed", type=int, default=0, help="dataset seed; case i uses a seed derived from (seed, i)")
    p.add_argument("--healthy-fraction", type=float, default=0.1, metavar="F",
                   help="fraction of cases without tumour (default 0.1)")
    p.add_argument("--t2-negative-fraction", type=float, default=0.0, metavar="F",
                   help="fraction of further healthy cases rendered T2-weighted: wrong-contrast negatives that "
                        "teach the model not to report the bright CSF of a T2 scan as tumour (default 0)")
    p.add_argument("--name", default=None, metavar="DatasetNNN_Name",
                   help="dataset folder name (default Dataset501_BATsegPhantoms)")
    p.add_argument("--workers", type=int, default=1, metavar="W", help="worker processes (default 1)")
    p.add_argument("--matrix", type=int, default=None,
                   help="force the superior-inferior matrix size (small preview datasets); default: drawn")
    p.add_argument("--slices", type=int, default=None, help="force the number of slices; default: drawn 9-20")
    p.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty dataset folder")
    p.add_argument("--progress", choices=("bar", "json", "quiet"), default="bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from batseg.phantoms.dataset import DEFAULT_DATASET_NAME, write_dataset

    progress = Progress(args.progress)
    folder = write_dataset(args.output, args.num_cases, args.seed, args.name or DEFAULT_DATASET_NAME,
                           args.healthy_fraction, workers=args.workers, overwrite=args.overwrite,
                           progress=progress, matrix=args.matrix, n_slices=args.slices,
                           t2_fraction=args.t2_negative_fraction)
    progress.log(f"wrote {args.num_cases} phantoms to {folder} (synthetic data; not for clinical use)")
    progress.result(outputs={"dataset": str(folder)}, num_cases=args.num_cases, seed=args.seed,
                    seconds=round(progress.timings.get("phantoms", 0.0), 2))
    return 0
