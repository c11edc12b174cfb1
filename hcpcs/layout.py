"""The CMS "Alpha-Numeric HCPCS File" record layout, shared by the text and workbook readers.

Positions are the 0-based Python slices of the 320-character fixed-width record. The
workbook carries the same 48 fields as columns, in the same order, under the CMS headers.
"""

from dataclasses import dataclass

RECORD_LENGTH = 320
CONTINUATION_LENGTH = 91  # CMS right-trims continuation records to this length in some years

PROCEDURE_FIRST = "3"
PROCEDURE_CONTINUATION = "4"
MODIFIER_FIRST = "7"
MODIFIER_CONTINUATION = "8"
FIRST_RECORD_IDS = (PROCEDURE_FIRST, MODIFIER_FIRST)
CONTINUATION_RECORD_IDS = (PROCEDURE_CONTINUATION, MODIFIER_CONTINUATION)
RECORD_IDS = FIRST_RECORD_IDS + CONTINUATION_RECORD_IDS


@dataclass(frozen=True)
class Field:
    """One field of the CMS record: its raw column name, workbook header and text slice."""

    name: str
    header: str
    start: int
    end: int


def _repeated(name: str, header: str, start: int, width: int, count: int) -> list[Field]:
    return [
        Field(f"{name}{i}", f"{header}{i}", start + (i - 1) * width, start + i * width)
        for i in range(1, count + 1)
    ]


FIELDS: tuple[Field, ...] = (
    Field("hcpc", "HCPC", 0, 5),
    Field("seqnum", "SEQNUM", 5, 10),
    Field("recid", "RECID", 10, 11),
    Field("long_description", "LONG DESCRIPTION", 11, 91),
    Field("short_description", "SHORT DESCRIPTION", 91, 119),
    *_repeated("price", "PRICE", 119, 2, 4),
    Field("mult_pi", "MULT_PI", 127, 128),
    *_repeated("cim", "CIM", 128, 6, 3),
    *_repeated("mcm", "MCM", 146, 8, 3),
    Field("statute", "STATUTE", 170, 180),
    *_repeated("labcert", "LABCERT", 180, 3, 8),
    *_repeated("xref", "XREF", 204, 5, 5),
    Field("cov", "COV", 229, 230),
    Field("asc_grp", "ASC_GRP", 230, 232),
    Field("asc_dt", "ASC_DT", 232, 240),
    Field("opps", "OPPS", 240, 243),
    Field("opps_pi", "OPPS_PI", 243, 244),
    Field("opps_dt", "OPPS_DT", 244, 252),
    Field("procnote", "PROCNOTE", 252, 256),
    Field("betos", "BETOS", 256, 259),
    *_repeated("tos", "TOS", 260, 1, 5),
    Field("anest_bu", "ANEST_BU", 265, 268),
    Field("add_dt", "ADD DT", 268, 276),
    Field("act_eff_dt", "ACT EFF DT", 276, 284),
    Field("term_dt", "TERM DT", 284, 292),
    Field("action_cd", "ACTION CD", 292, 293),
)

RAW_COLUMNS: tuple[str, ...] = tuple(field.name for field in FIELDS)
WORKBOOK_HEADERS: tuple[str, ...] = tuple(field.header for field in FIELDS)

# Repeated CMS fields, stored as ordered lists: list column -> raw columns in CMS order.
REPEATED_FIELDS: dict[str, tuple[str, ...]] = {
    "pricing_indicator_codes": tuple(f"price{i}" for i in range(1, 5)),
    "coverage_issues_manual_references": tuple(f"cim{i}" for i in range(1, 4)),
    "carriers_manual_references": tuple(f"mcm{i}" for i in range(1, 4)),
    "lab_certification_codes": tuple(f"labcert{i}" for i in range(1, 9)),
    "cross_reference_codes": tuple(f"xref{i}" for i in range(1, 6)),
    "type_of_service_codes": tuple(f"tos{i}" for i in range(1, 6)),
}

# Single-valued CMS fields: warehouse column -> raw column.
SCALAR_FIELDS: dict[str, str] = {
    "long_description": "long_description",
    "short_description": "short_description",
    "multiple_pricing_indicator_code": "mult_pi",
    "statute_number": "statute",
    "coverage_code": "cov",
    "asc_payment_group_code": "asc_grp",
    "asc_payment_group_effective_date": "asc_dt",
    "mog_payment_group_code": "opps",
    "mog_payment_policy_indicator": "opps_pi",
    "mog_effective_date": "opps_dt",
    "processing_note_number": "procnote",
    "betos_code": "betos",
    "anesthesia_base_units": "anest_bu",
    "code_added_date": "add_dt",
    "action_effective_date": "act_eff_dt",
    "termination_date": "term_dt",
    "action_code": "action_cd",
}

DATE_FIELDS: tuple[str, ...] = ("asc_dt", "opps_dt", "add_dt", "act_eff_dt", "term_dt")
