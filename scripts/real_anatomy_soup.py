"""A model soup's members, as its card tells them: where each came from and how to rebuild it.

A soup (`batseg average`, `MEMBERS=...` in scripts/train_real_anatomy_model.sh) averages the
weights of several fine-tunings of one parent, each trained by a run of that script into its own
work folder. Each run wrote its knobs to WORK/RECIPE (KEY=value lines) and its commit to
WORK/COMMIT; the member's model file records its training command. make_real_anatomy_card.py
reads them here, so the card lists every member's draw and the exact commands that rebuild it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batseg.model_file import read_manifest

REPO = Path(__file__).resolve().parent.parent
MODELS_IN_REPO = "BATsegSlicer/Resources/Models"


@dataclass
class Member:
    """One fine-tuning averaged into the soup."""

    folder: Path  # its work folder on this machine
    placeholder: str  # how the card names that folder (MEMBER_1, ...)
    knobs: dict[str, str]  # its RECIPE
    commit: str
    manifest: dict[str, Any]  # of its fine-tuned (untuned) model file


def read_recipe(folder: Path) -> dict[str, str]:
    """The KEY=value lines train_real_anatomy_model.sh wrote to FOLDER/RECIPE."""
    recipe = folder / "RECIPE"
    if not recipe.is_file():
        raise SystemExit(f"{recipe} is missing: a soup member must be a work folder of train_real_anatomy_model.sh")
    pairs = (line.split("=", 1) for line in recipe.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def read_members(folders: list[Path], name: str) -> list[Member]:
    """The members, in the order they were averaged."""
    return [Member(folder, f"MEMBER_{index}", read_recipe(folder), (folder / "COMMIT").read_text().strip()[:7],
                   read_manifest(folder / f"{name}.batseg")) for index, folder in enumerate(folders, start=1)]


def shipped_in(file_name: str) -> str:
    """The commit that added a model file to the repository (so it holds the file)."""
    path = f"{MODELS_IN_REPO}/{file_name}"
    found = subprocess.run(["git", "log", "-n1", "--diff-filter=A", "--format=%H", "HEAD", "--", path], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not found:
        raise SystemExit(f"no commit of this repository added {path}: the members' parent must have been shipped")
    return found[:7]


def parent_file(members: list[Member]) -> str:
    """The file name of the members' common parent."""
    parent = members[0].manifest["parent"]
    return f"{parent['name']}-{parent['version']}.batseg"


def member_recipe(member: Member) -> str:
    """The train_real_anatomy_model.sh call that rebuilds one member (the parent from git history)."""
    knobs = member.knobs
    words = ["CARD=0", "PARENT=PARENT_FILE", f"VERSION={knobs['VERSION']}", f"TRAIN_SEED={knobs['TRAIN_SEED']}"]
    words += [f"TRAIN_CASES={knobs['TRAIN_CASES']}"] if knobs.get("TRAIN_CASES", "240") != "240" else []
    words += [f"PHANTOM_CASES={knobs['PHANTOM_CASES']}"] if knobs.get("PHANTOM_CASES", "140") != "140" else []
    words += ["TYPES_BY_BACKGROUND=1"] if knobs.get("TYPES_BY_BACKGROUND") else []
    words += [f'TRAIN_OPTS="{knobs["TRAIN_OPTS"]}"'] if knobs.get("TRAIN_OPTS") else []
    return " ".join(words) + f" bash scripts/train_real_anatomy_model.sh {member.placeholder}"


def soup_recipe(members: list[Member], version: str, compared: str) -> str:
    """Every command that rebuilds the soup and its card: the parent, each member, then the average."""
    parent = parent_file(members)
    lines = [f"git show {shipped_in(parent)}:{MODELS_IN_REPO}/{parent} > PARENT_FILE"]
    lines += [member_recipe(member) for member in members]
    folders = " ".join(member.placeholder for member in members)
    lines.append(f'MEMBERS="{folders}" PARENT={MODELS_IN_REPO}/{compared} VERSION={version} '
                 "bash scripts/train_real_anatomy_model.sh WORK_DIR")
    return "\n".join(lines)


def folder_names(members: list[Member], work: Path) -> dict[Path, str]:
    """This machine's folders and the placeholders the card writes for them (the soup's own is WORK_DIR), and
    a member's parent file when it lay outside the shipped models (the recipe's PARENT_FILE)."""
    names = {work: "WORK_DIR", **{member.folder: member.placeholder for member in members}}
    for member in members:
        command = (member.manifest.get("training") or {}).get("command") or []
        if "--finetune-from" in command[:-1]:
            parent = command[command.index("--finetune-from") + 1]
            if not parent.startswith(MODELS_IN_REPO + "/"):
                names[Path(parent)] = "PARENT_FILE"
    return names
