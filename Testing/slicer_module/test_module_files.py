"""Static checks of the files Slicer loads, runnable without Slicer: the panel's .ui defines every
widget the Widget code uses, the CMake lists name every Logic file, the icons are 128x128 PNGs,
and the extension metadata the Extensions Index needs is set."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "BATsegSlicer"


def test_ui_defines_every_widget_the_widget_code_uses():
    ui = ET.parse(MODULE / "Resources" / "UI" / "BATsegSlicer.ui")
    defined = {w.get("name") for w in ui.iter("widget")}
    code = (MODULE / "BATsegSlicer.py").read_text(encoding="utf-8")
    used = {a or b for a, b in re.findall(r"self\.ui\.(\w+)|widget\.ui\.(\w+)", code)}
    assert used and used <= defined, sorted(used - defined)
    custom = {c.findtext("class") for c in ui.iter("customwidget")}
    assert {w.get("class") for w in ui.iter("widget")} - custom <= {
        "QLabel", "QComboBox", "QPushButton", "QCheckBox", "QProgressBar", "QPlainTextEdit", "QTableWidget",
        "QLineEdit", "QSpinBox", "QWidget"}
    assert "not for clinical use" in ET.tostring(ui.getroot(), encoding="unicode")


def test_option_checkboxes_start_as_the_parameter_nodes_defaults():
    """The .ui's initial check states are those a new scene's parameter node gets (crop on, TTA off...)."""
    ui = ET.parse(MODULE / "Resources" / "UI" / "BATsegSlicer.ui")
    checked = {w.get("name"): w.findtext("property[@name='checked']/bool") for w in ui.iter("widget")
               if w.get("class") == "QCheckBox"}
    assert {name: checked[name] for name in ("ttaCheckBox", "postprocessCheckBox", "cropToCordCheckBox")} == {
        "ttaCheckBox": "false", "postprocessCheckBox": "true", "cropToCordCheckBox": "true"}
    crop = next(w for w in ui.iter("widget") if w.get("name") == "cropToCordCheckBox")
    assert crop.findtext("property[@name='text']/string") == "Segment around the spinal cord only (faster)"
    assert "whole volume" in crop.findtext("property[@name='toolTip']/string")


def test_cmake_lists_every_logic_file():
    listed = set(re.findall(r"BATsegSlicerLib/\w+\.py", (MODULE / "CMakeLists.txt").read_text()))
    present = {f"BATsegSlicerLib/{p.name}" for p in (MODULE / "BATsegSlicerLib").glob("*.py")}
    assert listed == present


def test_extension_metadata_and_icons():
    text = (REPO / "CMakeLists.txt").read_text()
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_DEPENDS"):
        assert re.search(rf"set\({key} ", text), key
    assert 'set(EXTENSION_CATEGORY "Segmentation")' in text and 'set(EXTENSION_DEPENDS "PyTorch")' in text
    assert "add_subdirectory(BATsegSlicer)" in text
    from PIL import Image

    for icon in (MODULE / "Resources" / "Icons" / "BATsegSlicer.png", REPO / "Resources" / "BATsegSlicer.png"):
        with Image.open(icon) as image:
            assert image.format == "PNG" and image.size == (128, 128)
