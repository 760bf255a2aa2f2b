"""`batseg sample`: list the bundled sample phantoms or copy them out for a demo run.

The four sample cases (one per tumour type, synthetic phantoms, not for clinical use) ship
inside the module's Resources; this command verifies their checksums and copies them into
`OUT/images/NAME.nii.gz` and `OUT/labels/NAME.nii.gz`, the layout `batseg predict` and
`batseg evaluate` take (used by the README's demo).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from batseg.errors import BATsegError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="list or copy out the bundled sample phantoms (one per tumour type)",
        description="Copy the bundled sample phantoms (synthetic; not for clinical use), checksums verified.",
    )
    parser.add_argument("-o", "--output", type=Path, default=None, help="folder to copy images/ and labels/ into")
    parser.add_argument("--list", action="store_true", help="only list the sample cases")
    parser.add_argument("--overwrite", action="store_true", help="replace files already in the output folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from batseg.atomic_files import remove_stale_parts, write_atomically
    from batseg.phantoms.samples import sample_cases, sample_path

    cases = sample_cases()
    if args.list or args.output is None:
        for case in cases:
            print(f"{case['name']}: {case['tumour_name']} ({case['region']})")
        return 0
    for folder in ("images", "labels"):
        remove_stale_parts(args.output / folder)  # an earlier copy killed half-way
    for case in cases:
        for kind, folder in (("image", "images"), ("label", "labels")):
            source = sample_path(case["name"], kind)  # verifies the sha256
            target = args.output / folder / f"{case['name']}.nii.gz"
            try:
                write_atomically(target, lambda tmp, src=source: tmp.write_bytes(src.read_bytes()), args.overwrite)
            except OSError as exc:
                raise BATsegError(f"cannot write {target}: {exc.strerror}; choose another output folder") from None
    print(f"copied {len(cases)} sample cases to {args.output}/images and {args.output}/labels")
    return 0
