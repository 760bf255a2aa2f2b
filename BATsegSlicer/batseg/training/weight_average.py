"""Average the weights of sibling models: several fine-tunings of one parent made into one model.

Fine-tuning the same parent on different draws of synthetic cases (different seeds) gives models
whose figures spread widely at this project's training budget (one sibling better on real
backgrounds, another on phantoms). Averaging their weights, a "model soup" (Wortsman et al.,
ICML 2022, "Model soups: averaging weights of multiple fine-tuned models improves accuracy
without increasing inference time"), keeps what they share and damps what each learnt by chance
of its draw, at no cost at inference: the result has the parent's architecture, size and speed.
An ensemble of predictions would cost one network pass per member.

This works only for models fine-tuned from *one* parent: their weights lie in one basin of the
loss, and their mean is a good network. Two models trained apart (or from different parents)
have unrelated weights, whose mean is noise; so members must record the same parent weights
(`manifest["parent"]["weights_sha256"]`, written by `batseg train --finetune-from`), the same
architecture, input and classes, and different weights. Each member is loaded with every check
of `model_file.load_model` (a member is untrusted input like any model file).

The averaged model has no postprocessing setting (what suited one member need not suit the
mean): choose it with `batseg tune-postprocess`. Its manifest records every member (name,
version, file and weights sha256, training command) under `averaged_from`, and joins the
members' fine-tuning rounds in `training.data.rounds`, so a later fine-tuning replays the data
of every member (`batseg.training.replay`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from batseg.errors import ModelFileError
from batseg.model_file import load_model, sha256_file, unique_tensors, write_model_file

# Manifest keys that describe one member's evaluation or settings, not the average.
MEMBER_ONLY_KEYS = ("postprocessing", "derived_from", "metrics", "format", "format_version", "weights_sha256",
                    "weights_file")
SAME_KEYS = ("architecture", "input", "classes")
METHOD = ("uniform average of the weights of models fine-tuned from one parent (model soup, Wortsman et al. 2022); "
          "batseg average")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def check_members(manifests: list[dict[str, Any]], names: list[str]) -> None:
    """Refuse members that cannot be averaged, with one line naming the first pair that differs."""
    if len(manifests) < 2:
        raise ModelFileError("averaging needs at least two model files")
    first, first_name = manifests[0], names[0]
    parent = (first.get("parent") or {}).get("weights_sha256")
    for manifest, name in zip(manifests, names):
        own = (manifest.get("parent") or {}).get("weights_sha256")
        if not own:
            raise ModelFileError(f"{name} records no parent: only models fine-tuned from one parent "
                                 "(batseg train --finetune-from) can be averaged")
        if own != parent:
            raise ModelFileError(f"{name} and {first_name} were fine-tuned from different parents; their weights "
                                 "do not average into a working model: choose siblings of one parent")
        for key in SAME_KEYS:
            if _canonical(manifest.get(key)) != _canonical(first.get(key)):
                raise ModelFileError(f"{name} and {first_name} differ in their {key}; only models of one "
                                     "architecture, input and classes can be averaged")
    shas = [m["weights_sha256"] for m in manifests]
    for index, sha in enumerate(shas):
        if sha in shas[:index]:
            raise ModelFileError(f"{names[index]} has the same weights as {names[shas.index(sha)]}; "
                                 "give each model once")
    for manifest, name in zip(manifests, names):  # an average given beside one of its own members
        inside = {member.get("weights_sha256") for member in manifest.get("averaged_from") or []}
        for other, other_name in zip(manifests, names):
            if other["weights_sha256"] in inside:
                raise ModelFileError(f"{other_name} is already averaged into {name}; averaging both would count it "
                                     "twice: give the members, or the average, not both")


def average_state_dicts(state_dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of each floating-point tensor (summed in float64); other tensors (counters) from the first."""
    import torch

    averaged: dict[str, Any] = {}
    for key, tensor in state_dicts[0].items():
        if tensor.is_floating_point():
            total = torch.stack([sd[key].to(torch.float64) for sd in state_dicts]).mean(dim=0)
            averaged[key] = total.to(tensor.dtype)
        else:
            averaged[key] = tensor.clone()
    return averaged


def member_record(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """What the averaged model's manifest keeps of one member."""
    training = manifest.get("training") or {}
    return {"name": manifest.get("name"), "version": manifest.get("version"), "file": path.name,
            "sha256": sha256_file(path), "weights_sha256": manifest["weights_sha256"],
            "command": training.get("command")}


def joined_rounds(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The members' fine-tuning rounds, each round once (shared earlier rounds are not repeated)."""
    rounds: list[dict[str, Any]] = []
    for manifest in manifests:
        for entry in ((manifest.get("training") or {}).get("data") or {}).get("rounds") or []:
            if entry not in rounds:
                rounds.append(entry)
    return rounds


def averaged_manifest(manifests: list[dict[str, Any]], members: list[dict[str, Any]],
                      version: str | None) -> dict[str, Any]:
    """The first member's manifest, less its member-only keys, with the average recorded."""
    manifest = {k: json.loads(_canonical(v)) for k, v in manifests[0].items() if k not in MEMBER_ONLY_KEYS}
    if version:
        manifest["version"] = version
    manifest["averaged_from"] = members
    training = manifest.setdefault("training", {})
    training["method"] = METHOD
    data = training.get("data")
    if isinstance(data, dict) and "rounds" in data:
        data["rounds"] = joined_rounds(manifests)
    manifest["description"] = (f"{manifest.get('description', 'BATseg model')}; weights averaged over "
                               f"{len(members)} fine-tunings of one parent")
    return manifest


def average_model_files(paths: list[str | os.PathLike[str]], output: str | os.PathLike[str],
                        version: str | None = None, overwrite: bool = False) -> Path:
    """Write the weight average of sibling model files (module docstring) to `output`, atomically."""
    paths = [Path(p) for p in paths]
    output = Path(output)
    if output.exists() and not overwrite:
        raise ModelFileError(f"{output} already exists; choose another output name (or pass --overwrite)")
    if any(output.resolve() == p.resolve() for p in paths if p.exists()):
        raise ModelFileError(f"{output} is one of the models to average; write the average to another file")
    loaded = [load_model(p) for p in paths]
    manifests = [m.manifest for m in loaded]
    check_members(manifests, [p.name for p in paths])
    # One entry per shared tensor (the network lists some under several names; see unique_tensors).
    state = average_state_dicts([unique_tensors(m.network.state_dict()) for m in loaded])
    members = [member_record(p, m) for p, m in zip(paths, manifests)]
    return write_model_file(output, state, averaged_manifest(manifests, members, version), overwrite=overwrite)
