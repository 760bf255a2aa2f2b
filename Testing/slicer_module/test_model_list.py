"""The panel's model choice (BATsegSlicerLib/model_list.py) as a user meets it (issue 20, item 11):
the list after a refresh and which model is selected, the line describing it, the Remove rule, and
the add / remove flows with their question, log lines and error box."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from batseg.errors import ModelFileError

from BATsegSlicerLib.model_list import NO_MODEL, ModelList, model_info, removable
from BATsegSlicerLib.models import ModelLibrary
from panel_fakes import ScriptedDialogs
from slicer_test_support import make_model_file


@pytest.fixture
def library(tmp_path) -> ModelLibrary:
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    make_model_file(shipped / "batseg-phantoms.batseg", name="batseg-phantoms", title="BATseg phantoms",
                    weights=b"shipped weights")
    return ModelLibrary(user_dir=str(tmp_path / "user"), shipped_dir=str(shipped))


def model_list(library: ModelLibrary, dialogs: ScriptedDialogs) -> ModelList:
    """The list over the Logic's model calls (BATsegLogic.models / addModel / library)."""
    return ModelList(SimpleNamespace(library=library, models=library.entries, addModel=library.add), dialogs)


def test_refresh_selects_the_added_then_the_remembered_then_the_first(library, tmp_path):
    models = model_list(library, ScriptedDialogs())
    assert models.selection("") == -1  # before the first refresh: nothing to select
    added = library.add(str(make_model_file(tmp_path / "mine.batseg", name="mine", weights=b"mine")))
    (tmp_path / "user" / "broken.batseg").write_bytes(b"not a zip")
    skipped = models.refresh()
    assert [entry.shipped for entry in models.entries] == [True, False]  # shipped first
    assert len(skipped) == 1 and skipped[0].startswith("Model file skipped: broken.batseg: ")
    assert models.selection(added.path) == 1 and models.entry(added.path) == added
    assert models.selection("/gone.batseg") == 0 and models.selection("") == 0
    assert models.entry("/gone.batseg") is None


def test_the_info_line_and_the_remove_rule(library):
    models = model_list(library, ScriptedDialogs())
    models.refresh()
    shipped = models.entries[0]
    assert model_info(None) == NO_MODEL == "No model file found: add one with 'Add model file...'."
    line = model_info(shipped)
    assert line.startswith("BATseg phantoms 0.0.1. Lesions under ") and line.endswith("test file")
    assert not removable(shipped) and not removable(None)


def test_remove_asks_and_cancel_keeps_the_file(library, tmp_path):
    entry = library.add(str(make_model_file(tmp_path / "mine.batseg", name="mine", weights=b"mine")))
    declined = ScriptedDialogs(False)
    models = model_list(library, declined)
    models.refresh()
    assert removable(entry) and models.remove(entry, print, lambda: None) is False
    assert declined.asked == [f"Delete the model file {entry.path}?"] and os.path.exists(entry.path)
    assert models.remove(models.entries[0], print, lambda: None) is False  # shipped: not even asked
    assert declined.asked == [f"Delete the model file {entry.path}?"]
    log, refreshed = [], []
    models = model_list(library, ScriptedDialogs(True))
    assert models.remove(entry, log.append, lambda: refreshed.append(models.refresh())) is True
    assert not os.path.exists(entry.path) and log == [f"Model removed: {entry.label}"]
    assert refreshed and [e.path for e in models.entries] == [models.entries[0].path]


def test_add_logs_and_selects_the_new_model_or_shows_why_not(library, tmp_path):
    dialogs = ScriptedDialogs()
    models = model_list(library, dialogs)
    log, selected = [], []
    entry = models.add(str(make_model_file(tmp_path / "mine.batseg", name="mine", weights=b"mine")), log.append,
                       selected.append)
    assert log == [f"Model added: {entry.label}"] and selected == [entry.path] and not entry.shipped
    with pytest.raises(ModelFileError):
        models.add(str(tmp_path / "notes.txt"), log.append, selected.append)
    [(text, _)] = dialogs.errors
    assert text.startswith("The model file was not added.\n\nnotes.txt is not a BATseg model file")
    assert models.user_folder() == library.user_dir and os.path.isdir(library.user_dir)
