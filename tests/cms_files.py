"""Writers for small CMS-format fixture files: fixed-width ANWEB text, ANWEB workbooks, zips.

Each test writes exactly the records it needs, so every format trap has a fixture of its own.
"""

import zipfile
from datetime import date, datetime
from pathlib import Path

from hcpcs import layout

FIELD_BY_NAME = {field.name: field for field in layout.FIELDS}

# Fields of an ordinary active code (as S9326 has them) that a fixture does not set itself.
DEFAULT_FIELDS = {
    "price1": "00",
    "mult_pi": "9",
    "cov": "I",
    "betos": "Z2",
    "tos1": "9",
    "anest_bu": "0",
    "add_dt": "20200101",
    "act_eff_dt": "20200101",
    "action_cd": "N",
}


def first_record(
    code: str,
    long_description: str = "Test procedure",
    *,
    recid: str | None = None,
    seqnum: str = "00100",
    **fields: str,
) -> str:
    """One 320-character first record; `fields` are raw column names such as act_eff_dt="20200101".

    A two-character code is written as a modifier: right-aligned after three blanks, record id 7.
    """
    if recid is None:
        recid = layout.MODIFIER_FIRST if len(code) == 2 else layout.PROCEDURE_FIRST
    values = {
        "hcpc": code.rjust(5),
        "seqnum": seqnum,
        "recid": recid,
        "long_description": long_description[:80],
        "short_description": long_description[:28],
        **DEFAULT_FIELDS,
    }
    values.update(fields)
    line = [" "] * layout.RECORD_LENGTH
    for name, value in values.items():
        field = FIELD_BY_NAME[name]
        width = field.end - field.start
        if len(value) > width:
            raise ValueError(f"{name}={value!r} is wider than {width} characters")
        padded = value.rjust(width) if name in ("anest_bu",) else value.ljust(width)
        line[field.start : field.end] = padded
    return "".join(line)


def continuation_record(code: str, text: str, *, seqnum: str = "00200", recid: str | None = None, padded: bool = False) -> str:
    """One continuation record (record id 4 or 8), right-trimmed to 91 characters unless `padded`."""
    if recid is None:
        recid = layout.MODIFIER_CONTINUATION if len(code) == 2 else layout.PROCEDURE_CONTINUATION
    line = f"{code.rjust(5)}{seqnum}{recid}{text[:80].ljust(80)}"
    return line.ljust(layout.RECORD_LENGTH) if padded else line


def write_text(path: Path, lines: list[str], *, newline: str = "\r\n", encoding: str = "cp1252") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + newline for line in lines).encode(encoding))
    return path


def workbook_row(code: str, long_description: str = "Test procedure", *, recid: str | None = None, **fields) -> list:
    """One workbook row in the 48 CMS columns; `fields` are raw column names, values may be numbers or dates."""
    if recid is None:
        recid = layout.MODIFIER_FIRST if len(code.strip()) == 2 else layout.PROCEDURE_FIRST
    values = {
        "hcpc": code.rjust(5) if len(code) == 2 else code,
        "seqnum": "0010",
        "recid": recid,
        "long_description": long_description,
        "short_description": long_description[:28],
        **DEFAULT_FIELDS,
    }
    values.update(fields)
    return [values.get(name) for name in layout.RAW_COLUMNS]


def write_workbook(
    path: Path,
    rows: list[list],
    *,
    disclaimers: list[str] = (),
    headers: list[str] | None = None,
    sheet_name: str = "A",
    trailing_empty_rows: int = 0,
) -> Path:
    """Write an ANWEB-style .xlsx: disclaimer rows, the header row, the data rows, then empty rows."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = sheet_name
    for text in disclaimers:
        sheet.append([text])
    sheet.append(list(headers or layout.WORKBOOK_HEADERS))
    for row in rows:
        sheet.append(row)
    for _ in range(trailing_empty_rows):
        sheet.append([""] * len(layout.WORKBOOK_HEADERS))
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


__all__ = [
    "continuation_record",
    "date",
    "datetime",
    "first_record",
    "workbook_row",
    "write_text",
    "write_workbook",
    "write_zip",
]
