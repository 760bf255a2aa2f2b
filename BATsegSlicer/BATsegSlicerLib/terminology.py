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
- Anatomic region: SCT 2748008 "Spinal cord". Source: Slicer's
  Modules/Loadable/Terminologies/Resources/AnatomicRegionAndModifier-DICOM-Master.json
  (DICOM CID 7153 "CNS Tissue Segmentation Types"); also DICOM PS3.16 CID 7153 as mirrored in
  bvdh/dicom-terminology-in-fhir input/fsh/ValueSet-dicom-cid-7153-CNSSegmentationType.fsh.

Segments are mapped to tumour classes by terminology and name, never by label value: label
values in a `.seg.nrrd` are renumbered by Slicer as soon as segments are edited.
"""

from __future__ import annotations

from dataclasses import dataclass

from batseg.labels import TUMOUR_CLASSES, TumourClass

SCHEME = "SCT"
# Context names of Slicer's built-in DICOM lists: a terminology string naming them opens the
# right lists in Slicer's terminology selector.
TYPE_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


@dataclass(frozen=True)
class Code:
    """One coded concept: value, coding scheme designator, meaning."""

    value: str
    meaning: str
    scheme: str = SCHEME


CATEGORY = Code("49755003", "Morphologically abnormal structure")
NEOPLASM = Code("108369006", "Neoplasm")
SPINAL_CORD = Code("2748008", "Spinal cord")

# Segment type per tumour class key (see the module docstring for each source).
TYPE_BY_CLASS_KEY: dict[str, Code] = {
    "meningioma": NEOPLASM,
    "ependymoma": Code("1186904005", "Ependymoma"),
    "astrocytoma": Code("1157043006", "Astrocytoma"),
    "hemangioblastoma": NEOPLASM,
}


def terminology_string(tumour: TumourClass) -> str:
    """Slicer's serialized terminology entry for the segment of this tumour class.

    Format (Slicer >= 4.10, unchanged up to 5.x):
    ``context~SCHEME^value^meaning(category)~type~typeModifier~anatomicContext~region~regionModifier``.
    Built here rather than with vtkSlicerTerminologiesModuleLogic so that it needs no
    terminology files (they are not loaded headless).
    """
    kind = TYPE_BY_CLASS_KEY[tumour.key]
    empty = "^^"
    return "~".join([
        TYPE_CONTEXT, _coded(CATEGORY), _coded(kind), empty,
        ANATOMIC_CONTEXT, _coded(SPINAL_CORD), empty,
    ])


def _coded(code: Code) -> str:
    return f"{code.scheme}^{code.value}^{code.meaning}"


def parse_terminology(text: str) -> dict[str, Code | None]:
    """The category, type and region codes of a serialized terminology entry (None if absent)."""
    parts = (text or "").split("~")
    fields = {"category": 1, "type": 2, "region": 5}
    return {name: _parse_code(parts[index]) if index < len(parts) else None for name, index in fields.items()}


def _parse_code(text: str) -> Code | None:
    pieces = text.split("^")
    if len(pieces) < 3 or not pieces[1]:
        return None
    return Code(value=pieces[1], meaning=pieces[2], scheme=pieces[0])


def class_for_segment(name: str, terminology: str) -> TumourClass | None:
    """The tumour class a segment stands for, or None if it is none of the four.

    Order: (1) a terminology type code used by exactly one class decides; (2) otherwise the
    segment name decides (case-insensitive match of the class name or key, e.g. "Ependymoma",
    "ependymoma", "Spinal meningioma", "meningioma 2"); (3) a shared code (Neoplasm) whose name
    matches no class gives None. A terminology type that belongs to no class is ignored in
    favour of the name, so a user who re-coded a segment but kept its name is still understood.
    """
    kind = parse_terminology(terminology).get("type")
    if kind is not None:
        owners = [c for c in TUMOUR_CLASSES if TYPE_BY_CLASS_KEY[c.key].value == kind.value]
        if len(owners) == 1:
            return owners[0]
    return class_for_name(name)


def class_for_name(name: str) -> TumourClass | None:
    """The class whose name or key appears in a segment name (None if none or several do)."""
    lowered = (name or "").lower()
    matches = [c for c in TUMOUR_CLASSES if c.name.lower() in lowered or c.key in lowered]
    return matches[0] if len(matches) == 1 else None
