"""Atomic and all-or-nothing writing, and the up-front check that an output can be written."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable

import pytest

from batseg import cli
from batseg.atomic_files import check_can_write, text_writer, write_all_or_nothing, write_atomically
from batseg.errors import BATsegError


def _failing_writer(temporary: Path) -> None:
    temporary.write_text("half")
    raise OSError(errno.ENOSPC, "No space left on device", str(temporary))


def _target_seen_while_writing(path: Path, content: str, seen: list) -> Callable[[Path], None]:
    """A writer that records what a reader of `path` finds while the write is under way."""
    def writer(temporary: Path) -> None:
        temporary.write_text(content[: len(content) // 2])  # half written...
        seen.append((temporary, path.read_text() if path.exists() else None))
        with temporary.open("a") as handle:
            handle.write(content[len(content) // 2:])
    return writer


def test_write_atomically_never_shows_a_half_written_target(tmp_path: Path) -> None:
    # A reader polling the folder (the Slicer module, a script) sees the old file or the new
    # one, never a half-written one: the writer gets a hidden name beside the target.
    target, seen = tmp_path / "case.report.json", []
    target.write_text("old report")
    write_atomically(target, _target_seen_while_writing(target, "new report", seen), overwrite=True, suffix=".json")
    (temporary, during), = seen
    assert during == "old report" and temporary != target
    assert temporary.parent == tmp_path and temporary.name.startswith(".") and temporary.name.endswith(".json")
    assert target.read_text() == "new report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.report.json"]


def test_write_atomically_creates_a_new_target_only_when_complete(tmp_path: Path) -> None:
    target, seen = tmp_path / "new" / "case.nii.gz", []
    write_atomically(target, _target_seen_while_writing(target, "labels", seen), overwrite=False)
    assert seen[0][1] is None  # not there while being written
    assert target.read_text() == "labels"


def test_write_atomically_failing_keeps_the_old_target_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "case.nii.gz"
    target.write_text("old labels")
    with pytest.raises(OSError):
        write_atomically(target, _failing_writer, overwrite=True, suffix=".nii.gz")
    assert target.read_text() == "old labels"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.nii.gz"]
    with pytest.raises(OSError):
        write_atomically(tmp_path / "other.nii.gz", _failing_writer, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.nii.gz"]  # no half-written new file either


def test_all_or_nothing_keeps_every_previous_file_when_one_write_fails(tmp_path: Path) -> None:
    labels, report = tmp_path / "case.nii.gz", tmp_path / "case.report.json"
    labels.write_text("old labels")
    report.write_text("old report")
    with pytest.raises(OSError):
        write_all_or_nothing([(labels, text_writer("new labels"), ""), (report, _failing_writer, "")], overwrite=True)
    assert (labels.read_text(), report.read_text()) == ("old labels", "old report")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.nii.gz", "case.report.json"]  # no temporary left


def test_all_or_nothing_refuses_before_writing_anything(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("user's")
    with pytest.raises(BATsegError, match="already exists"):
        write_all_or_nothing([(tmp_path / "a.txt", text_writer("a"), ""), (tmp_path / "b.txt", text_writer("b"), "")],
                             overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]
    assert (tmp_path / "b.txt").read_text() == "user's"


def test_all_or_nothing_replaces_all(tmp_path: Path) -> None:
    files = [(tmp_path / "x" / f"{n}.txt", text_writer(n), "") for n in ("a", "b")]
    assert write_all_or_nothing(files, overwrite=False) == [tmp_path / "x" / "a.txt", tmp_path / "x" / "b.txt"]
    assert [(tmp_path / "x" / f"{n}.txt").read_text() for n in ("a", "b")] == ["a", "b"]


def test_an_unwritable_folder_is_refused_up_front(tmp_path: Path, monkeypatch) -> None:
    # Tests may run as root, for whom permission bits do not apply: stand in for the kernel's answer.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tmp_path else real_access(path, mode))
    with pytest.raises(BATsegError, match=f"no write permission on {tmp_path}"):
        check_can_write(tmp_path / "new" / "deeper" / "out.nii.gz", overwrite=False)
    assert not (tmp_path / "new").exists()  # the check creates nothing


def test_an_output_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(BATsegError, match="is a file, not a folder"):
        check_can_write(tmp_path / "file" / "out.csv", overwrite=False)


def test_the_cli_turns_a_file_system_error_into_one_line(monkeypatch, capfd) -> None:
    def full_disk(args) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/case.nii.gz")

    parser = cli.build_parser()
    args = parser.parse_args(["evaluate", "--pred", "p", "--gt", "g"])
    monkeypatch.setattr(cli, "build_parser", lambda: _Fixed(parser, args, full_disk))
    assert cli.main([]) == 2
    err = capfd.readouterr().err.strip()
    assert err.splitlines() == [err] and "/data/out/case.nii.gz: No space left on device" in err
    assert "Traceback" not in err


class _Fixed:
    """A parser that returns prepared arguments whose command is `func`."""

    def __init__(self, parser, args, func) -> None:
        self.parser, self.args = parser, args
        self.args.func = func

    def parse_args(self, argv):
        return self.args

    def print_help(self) -> None:
        self.parser.print_help()


def test_a_training_output_in_an_unwritable_folder_is_refused_before_training(tmp_path: Path, monkeypatch) -> None:
    from batseg.training.run import check_output

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tmp_path else real_access(path, mode))
    with pytest.raises(BATsegError, match="no write permission"):
        check_output(tmp_path / "model.batseg", overwrite=False)
