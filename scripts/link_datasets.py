"""One nnU-Net raw data set made of links to the cases of several (e.g. phantom and real validation sets).

    python scripts/link_datasets.py -o WORK_DIR/val/Dataset514_BATsegMixVal SOURCE_DATASET [SOURCE_DATASET ...]

Images, labels and cord masks are symbolic links (nothing is copied); dataset.json is the first
source's with the case count of the union. Case names must be unique across the sources.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

FOLDERS = ("imagesTr", "labelsTr", "cordTr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("sources", type=Path, nargs="+")
    args = parser.parse_args()
    count = 0
    for source in args.sources:
        for folder in FOLDERS:
            for path in sorted((source / folder).glob("*.nii.gz")):
                target = args.out / folder / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists() or target.is_symlink():
                    raise SystemExit(f"{path.name} is in two sources; case names must be unique")
                target.symlink_to(path.resolve())
                count += folder == "labelsTr"
    dataset = json.loads((args.sources[0] / "dataset.json").read_text())
    dataset.update(numTraining=count, description="Union of: " + ", ".join(s.name for s in args.sources))
    (args.out / "dataset.json").write_text(json.dumps(dataset, indent=1))
    print(f"{args.out}: {count} cases")


if __name__ == "__main__":
    main()
