"""`batseg benchmark`: time BATseg's file-to-report pipeline against nnU-Net v2's predictor.

See `batseg.benchmark` for what is measured. Prints a table (seconds, peak memory, speed-up)
on stdout and, with --json, writes the figures to a file.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `benchmark` sub-command."""
    parser = subparsers.add_parser(
        "benchmark",
        help="time file -> labels + report with BATseg's predictor and with nnU-Net v2's",
        description="Create a clinical-like sagittal volume, then time BATseg's `predict` (fresh process per run, "
        "from the file to the written label map and report) and nnU-Net v2's predictor with the same network, "
        "weights and threads; print seconds, peak memory and the speed-up.",
    )
    parser.add_argument("--model", help="model file or name (default: the shipped model, else an untrained one of --topology)")
    parser.add_argument("--topology", choices=("light", "paper"), default="light",
                        help="topology of the untrained model used when no model is given or shipped (default light)")
    parser.add_argument(
        "--untrained-output", choices=("random", "background"), default="random",
        help="untrained model only: random weights throughout (most voxels tumour, the slowest postprocessing) or "
        "a last layer predicting background everywhere (no lesion, the fastest)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device (default cpu)")
    parser.add_argument("--size", type=int, nargs=3, default=[15, 512, 512], metavar=("SLICES", "SI", "AP"),
                        help="volume size in voxels (default 15 512 512)")
    parser.add_argument("--spacing", type=float, nargs=3, default=[3.6, 0.5, 0.5], metavar=("SLICE", "SI", "AP"),
                        help="voxel spacing in mm (default 3.6 0.5 0.5)")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs of each pipeline (default 3)")
    parser.add_argument("--skip-nnunet", action="store_true", help="time BATseg only")
    parser.add_argument("--threads", type=int, default=None, help="threads for both pipelines (default: all cores)")
    parser.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto", help="BATseg backend (default auto)")
    parser.add_argument("--tile", default="auto", help="BATseg tile: auto, patch or Z,Y,X (default auto)")
    parser.add_argument(
        "--crop-to-cord", nargs="?", type=float, const=25.0, default=None, metavar="MARGIN_MM",
        help="BATseg runs as `predict --crop-to-cord MARGIN_MM` does by default (the cascade crop around the cord, "
        "margin 25); without it, BATseg segments the whole volume (--no-crop); nnU-Net always predicts the whole "
        "volume, as its predictor does",
    )
    parser.add_argument(
        "--cord-source", choices=("locator", "mask"), default="locator",
        help="with --crop-to-cord: the cord from batseg's cord locator (default, as predict does) or the phantom's "
        "own cord mask (--cord-masks)",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.add_argument("--progress", choices=("bar", "json", "quiet"), default="bar", help="progress display (default bar)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table."""
    import json

    from batseg.atomic_files import check_can_write, write_text_atomically
    from batseg.benchmark import Settings, format_table, run_benchmark
    from batseg.errors import BATsegError
    from batseg.inference.backends import check_threads
    from batseg.progress import Progress

    if args.crop_to_cord is not None and not args.crop_to_cord >= 0:
        raise BATsegError("--crop-to-cord takes a margin in mm, zero or positive")
    if min(args.size) < 1 or min(args.spacing) <= 0:
        raise BATsegError("--size needs positive voxel counts and --spacing positive millimetres")
    check_threads(args.threads)  # passed to every run it starts
    if args.json:
        check_can_write(args.json, args.overwrite)
    progress = Progress(args.progress)
    settings = Settings(
        model=args.model, topology=args.topology, device=args.device, size=tuple(args.size),
        spacing=tuple(args.spacing), repeats=args.repeats, skip_nnunet=args.skip_nnunet, threads=args.threads,
        backend=args.backend, tile=args.tile, untrained_output=args.untrained_output, crop_to_cord=args.crop_to_cord,
        cord_source=args.cord_source,
    )
    summary = run_benchmark(settings, progress.log)
    print(format_table(summary), flush=True)
    if args.json:
        write_text_atomically(args.json, json.dumps(summary, indent=2) + "\n", args.overwrite)
    progress.result(**summary)
    return 0
