"""Standard terminology (SNOMED CT) of the four tumour segments, and segment -> class mapping.

Every code below is copied from a source named next to it; none is made up.

- Category: SCT 49755003. Source: Slicer's DICOM master list,
  Slicer/Slicer Modules/Loadable/Terminologies/Resources/SegmentationCategoryTypeModifier-DICOM-Master.json
  (category of DICOM CID 7150 "SegmentationPropertyCategories"; that file spells the meaning
  "Morphologically Altered Structure", the older DICOM wording). The meaning written here is
  the current SNOMED CT preferred term "Morphologically abnormal structure" (fully specified
  name "Morphologically abnormal structure (morphologic abnormality)", shown as the parent of
  108369006 in the SNOMED CT browser at tx.fhir.org / the SNOMED International edition).
- Types (all SCT, all in the morphologic-abnormality hierarchy below 49755003):
  * Ependymoma 1186904005 and Astrocytoma 1157043006. Source: HL7 Europe eHDSI terminology
    package, ValueSet "eHDSI Morphologic Abnormality" v8.1.0
    (hl7-eu/EHDSI-Terminology-package branches/8.1.0/ValueSet-eHDSIMorphologicAbnormality-8.1.0.md),
    expanded from SNOMED CT International edition 2025-02-01.
  * Spinal meningioma and hemangioblastoma: no SNOMED CT morphology code for either could be
    traced to a citable source here (Slicer's terminology files and DICOM CID 7159 list only
    generic lesion types; the eHDSI value set lists neither). Following the project rule
    "never invent a code", both use the generic Neoplasm code 108369006 ("Neoplasm"; source:
    Slicer's DICOM master list above, DICOM CID 7159 "LesionSegmentationTypes"), and the
    specific tumour type is carried by the segment name. Because two classes share that code,
    `class_for_segment` resolves them by name.
- Type modifiers of Neoplasm, to tell spinal meningioma and hemangioblastoma apart in the
  terminology itself: codes of the private coding scheme "99BATSEG" (DICOM PS3.3 section 8.2:
  a coding scheme designator beginning with "99" is private, defined by its user). They are
  this module's own labels, not SNOMED CT codes, and are only ever written as modifiers of the
  standard Neoplasm code: a reader that knows nothing of 99BATSEG still sees "Neoplasm".
- Anatomic region: SCT 2748008 "Spinal cord". Source: Slicer's
  Modules/Loadable/Terminologies/Resources/AnatomicRegionAndModifier-DICOM-Master.json
  (DICOM CID 7153 "CNS Tissue Segmentation Types"); also DICOM PS3.16 CID 7153 as mirrored in
  bvdh/dicom-terminology-in-fhir input/fsh/ValueSet-dicom-cid-7153-CNSSegmentationType.fsh.

The module's own terminology context. Slicer's terminology picker finds only codes of the
contexts it has loaded, and Ependymoma and Astrocytoma are not in Slicer's DICOM master list, so
the four types ship as a context file of their own
(Resources/Terminology/SegmentationCategoryTypeModifier-BATseg.term.json, the format of Slicer's
and MONAIAuto3DSeg's context files), loaded at Slicer start-up (`load_terminology_context`), and
segments name that context. The file is `context_document()` written out; a test keeps the two
equal. The segments' names are not generated from the terminology (segmentation.py turns that
off): confirming the terminology dialog would otherwise rename "Spinal meningioma" to
"Neoplasm in Spinal cord".

Segments are mapped to tumour classes by terminology and name, never by label value: label
values in a `.seg.nrrd` are renumbered by Slicer as soon as segments are edited.
"""

from __future__ import annotations

import json
import os
from typing import Any

from batseg.errors import BATsegError
# The codes (one table with the engine's DICOM SEG writer; their sources are named above).
from batseg.labels import (  # noqa: F401 (NEOPLASM: part of the table, used by callers)
    CATEGORY, MODIFIER_BY_CLASS_KEY, NEOPLASM, PRIVATE_SCHEME, SPINAL_CORD, TUMOUR_CLASSES, TYPE_BY_CLASS_KEY, Code,
    TumourClass, display_rgb,
)
from batseg.labels import SCT as SCHEME

from BATsegSlicerLib.commands import MODULE_DIR

# The module's own context (types); the anatomic region comes from Slicer's built-in DICOM list.
TYPE_CONTEXT = "Segmentation category and type - BATseg spinal cord tumours"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
DICOM_TYPE_CONTEXT = "Segmentation category and type - DICOM master list"  # what BATseg before 0.7 wrote
CONTEXT_FILE = os.path.join(MODULE_DIR, "Resources", "Terminology", "SegmentationCategoryTypeModifier-BATseg.term.json")
CONTEXT_SCHEMA = "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/segment-context-schema.json#"


def terminology_string(tumour: TumourClass) -> str:
    """Slicer's serialized terminology entry for the segment of this tumour class.

    Format (Slicer >= 4.10, unchanged up to 5.x):
    ``context~SCHEME^value^meaning(category)~type~typeModifier~anatomicContext~region~regionModifier``.
    Built here rather than with vtkSlicerTerminologiesModuleLogic so that it needs no
    terminology files (they are not loaded headless).
    """
    kind = TYPE_BY_CLASS_KEY[tumour.key]
    modifier = MODIFIER_BY_CLASS_KEY.get(tumour.key)
    empty = "^^"
    return "~".join([
        TYPE_CONTEXT, _coded(CATEGORY), _coded(kind), _coded(modifier) if modifier else empty,
        ANATOMIC_CONTEXT, _coded(SPINAL_CORD), empty,
    ])


def _coded(code: Code) -> str:
    return f"{code.scheme}^{code.value}^{code.meaning}"


def parse_terminology(text: str) -> dict[str, Code | None]:
    """The category, type, type modifier and region codes of a serialized terminology entry
    (None if absent)."""
    parts = (text or "").split("~")
    fields = {"category": 1, "type": 2, "type_modifier": 3, "region": 5}
    return {name: _parse_code(parts[index]) if index < len(parts) else None for name, index in fields.items()}


def _parse_code(text: str) -> Code | None:
    pieces = text.split("^")
    if len(pieces) < 3 or not pieces[1]:
        return None
    return Code(value=pieces[1], meaning=pieces[2], scheme=pieces[0])


def class_for_segment(name: str, terminology: str) -> TumourClass | None:
    """The tumour class a segment stands for, or None if it is none of the four.

    Order: (1) a terminology type code used by exactly one class decides; (2) the shared
    Neoplasm code with one of this module's type modifiers (99BATSEG) decides; (3) otherwise
    the segment name decides (case-insensitive match of the class name or key, e.g.
    "Ependymoma", "ependymoma", "Spinal meningioma", "meningioma 2"); (4) a shared code
    (Neoplasm) without a modifier, whose name matches no class, gives None. A terminology type
    that belongs to no class is ignored in favour of the name, so a user who re-coded a segment
    (e.g. plain Neoplasm from Slicer's DICOM list) but kept its name is still understood.
    """
    codes = parse_terminology(terminology)
    kind = codes.get("type")
    if kind is not None:
        owners = [c for c in TUMOUR_CLASSES if TYPE_BY_CLASS_KEY[c.key].value == kind.value]
        if len(owners) == 1:
            return owners[0]
        modifier = codes.get("type_modifier")
        if owners and modifier is not None and modifier.scheme == PRIVATE_SCHEME:
            for tumour in owners:
                own = MODIFIER_BY_CLASS_KEY.get(tumour.key)
                if own is not None and own.value == modifier.value:
                    return tumour
    return class_for_name(name)


def class_for_name(name: str) -> TumourClass | None:
    """The class whose name or key appears in a segment name (None if none or several do)."""
    lowered = (name or "").lower()
    matches = [c for c in TUMOUR_CLASSES if c.name.lower() in lowered or c.key in lowered]
    return matches[0] if len(matches) == 1 else None


def context_document() -> dict[str, Any]:
    """The module's terminology context (Slicer's .term.json format): the category, the two
    specific tumour types and Neoplasm with this module's two modifiers, in the segments'
    colours and names."""

    def entry(code: Code, label: str, tumour: TumourClass | None = None) -> dict[str, Any]:
        item: dict[str, Any] = {"CodeMeaning": code.meaning, "CodingSchemeDesignator": code.scheme,
                                "CodeValue": code.value, "3dSlicerLabel": label}
        if code.scheme == SCHEME:
            item["SNOMEDCTConceptID"] = code.value
        if tumour is not None:
            item["recommendedDisplayRGBValue"] = list(display_rgb(tumour))
        return item

    types = []
    for tumour in TUMOUR_CLASSES:
        kind = TYPE_BY_CLASS_KEY[tumour.key]
        if tumour.key not in MODIFIER_BY_CLASS_KEY:
            types.append(entry(kind, tumour.name, tumour))
        elif not any(t["CodeValue"] == kind.value for t in types):
            neoplasm = entry(kind, kind.meaning)
            neoplasm["Modifier"] = [entry(MODIFIER_BY_CLASS_KEY[t.key], t.name, t) for t in TUMOUR_CLASSES
                                    if TYPE_BY_CLASS_KEY[t.key] == kind and t.key in MODIFIER_BY_CLASS_KEY]
            types.append(neoplasm)
    category = {"CodeMeaning": CATEGORY.meaning, "CodingSchemeDesignator": CATEGORY.scheme,
                "CodeValue": CATEGORY.value, "SNOMEDCTConceptID": CATEGORY.value, "showAnatomy": True,
                "Type": types}
    return {"SegmentationCategoryTypeContextName": TYPE_CONTEXT, "@schema": CONTEXT_SCHEMA,
            "SegmentationCodes": {"Category": [category]}}


def write_context_file(path: str = CONTEXT_FILE) -> None:
    """Write `context_document()` to the shipped context file (after changing the codes above)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(context_document(), handle, indent=2)
        handle.write("\n")


def load_terminology_context(terminologies_logic, path: str = CONTEXT_FILE) -> str:
    """Load the module's context into Slicer's terminologies logic (at start-up); returns its name."""
    name = terminologies_logic.LoadTerminologyFromFile(os.fspath(path))
    if name != TYPE_CONTEXT:
        raise BATsegError(f"the terminology file {path} could not be loaded (got context {name!r}): "
                          "reinstall the extension")
    return name
