"""Atomic and all-or-nothing writing, and the up-front check that an output can be written."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from batseg import cli
from batseg.atomic_files import check_can_write, text_writer, write_all_or_nothing
from batseg.errors import BATsegError


def _failing_writer(temporary: Path) -> None:
    temporary.write_text("half")
    raise OSError(errno.ENOSPC, "No space left on device", str(temporary))


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
