"""Progress output (issue 20, item 9): the "bar" mode is drawn by tqdm with the look it always had,
text lines go above an open bar instead of being glued to it, and an error leaves its line alone
on the screen; the JSON event protocol (the Slicer module's contract) and "quiet" are unchanged.
"""

from __future__ import annotations

import json

import pytest

from batseg.progress import JSON_PREFIX, Progress, parse_event


def on_screen(err: str) -> list[str]:
    """What a terminal shows of `err`: each line as its last carriage return left it, blank ones dropped."""
    shown = [line.rsplit("\r", 1)[-1].rstrip() for line in err.split("\n")]
    return [line for line in shown if line]


def test_the_bar_keeps_its_look_and_is_drawn_by_tqdm(capsys, monkeypatch) -> None:
    from tqdm import tqdm

    drawn = []
    monkeypatch.setattr("tqdm.tqdm", lambda *args, **kwargs: drawn.append(tqdm(*args, **kwargs)) or drawn[-1])
    shown = Progress("bar")
    for done in range(4):
        shown.update("predict", done, 3)
    with shown.stage("predict"):
        pass
    err = capsys.readouterr().err
    assert on_screen(err)[0] == f"{'predict':>12} [{'#' * 30}] 3/3"
    assert on_screen(err)[1].startswith("  predict: ") and on_screen(err)[1].endswith(" s")
    assert len(drawn) == 1 and drawn[0].disable  # one tqdm bar, closed when full


def test_a_line_written_while_a_bar_is_open_stands_on_its_own(capsys) -> None:
    shown = Progress("bar")
    shown.update("cases", 1, 3)
    shown.log("case 2/3: b")
    shown.warn("the scan is T2-weighted")
    shown.update("cases", 3, 3)
    assert on_screen(capsys.readouterr().err) == [
        "case 2/3: b", "batseg: warning: the scan is T2-weighted", f"{'cases':>12} [{'#' * 30}] 3/3"]


def test_an_error_leaves_its_line_alone_on_the_screen(capsys) -> None:
    shown = Progress("bar")
    shown.update("phantoms", 2, 5)
    Progress("bar").error("boom")  # the CLI reports an error through a Progress of its own
    assert on_screen(capsys.readouterr().err) == ["batseg: error: boom"]


def test_a_new_count_of_a_stage_starts_a_new_bar(capsys) -> None:
    shown = Progress("bar")
    for total in (2, 3):
        for done in range(total + 1):
            shown.update("predict", done, total)
    assert on_screen(capsys.readouterr().err) == [f"{'predict':>12} [{'#' * 30}] 2/2", f"{'predict':>12} [{'#' * 30}] 3/3"]


def _one_run(progress: Progress) -> None:
    with progress.stage("predict"):
        progress.update("predict", 1, 2)
        progress.log("a line")
    progress.warn("careful")
    progress.result(outputs={"labels": "x.nii.gz"})
    progress.error("boom", case="a")


def test_json_events_are_unchanged(capsys) -> None:
    _one_run(Progress("json"))
    out, err = capsys.readouterr()
    assert all(line.startswith(JSON_PREFIX) for line in out.splitlines())
    events = [parse_event(line) for line in out.splitlines()]
    seconds = events[3].pop("seconds")
    assert isinstance(seconds, float) and seconds >= 0
    assert events == [
        {"event": "stage", "stage": "predict", "status": "start"},
        {"event": "progress", "stage": "predict", "done": 1, "total": 2},
        {"event": "log", "message": "a line"},
        {"event": "stage", "stage": "predict", "status": "end"},
        {"event": "log", "message": "warning: careful"},
        {"event": "result", "outputs": {"labels": "x.nii.gz"}},
        {"event": "error", "message": "boom", "case": "a"},
    ]
    assert json.loads(out.splitlines()[0][len(JSON_PREFIX):]) == events[0]
    assert err == "batseg: error: boom\n"


def test_quiet_prints_only_warnings_and_errors(capsys) -> None:
    _one_run(Progress("quiet"))
    out, err = capsys.readouterr()
    assert out == "" and err == "batseg: warning: careful\nbatseg: error: boom\n"


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown progress mode 'fancy'"):
        Progress("fancy")
