"""Extract the code tables of CMS HCPCS record layouts into CSV files.

Each CMS release of the HCPCS Level II "ANWEB" file ships a `*recordlayout.txt`
report (cp1252, CRLF). Several of its fields list their valid values in a
"CODES :" block, and the "TABLE OF CODES APPENDIX" at the end lists the BETOS
and type-of-service tables. This script writes one CSV per table, with the
header `code,description,category`, into `hcpcs/code_tables/`.

Given layouts of several years, the script takes each description from the
newest layout that lists the code, and keeps codes that only older layouts list.
It also adds the codes in MANUAL_CODES, which come from a newer layout than the
ones the project stores.

Usage:
    python tools/extract_code_tables.py LAYOUT [LAYOUT ...] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger("extract_code_tables")

DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parents[1] / "hcpcs" / "code_tables"

# Rule that fills the category column of a table:
# "none": the category is empty and every line must be a code or a continuation line.
# "heading": the category is the heading line(s) that the code sits under.
# "parent": a code indented under another code gets that code's description.
Grouping = Literal["none", "heading", "parent"]


@dataclass(frozen=True)
class TableSource:
    """A code table and the place in the record layout that lists it."""

    name: str
    field_number: int | None = None
    appendix_table: str | None = None
    grouping: Grouping = "none"


# In record-layout order. asc_payment_group has no "CODES :" block, so
# extract_asc_payment_group() reads it from the text of field 17.
TABLE_SOURCES: tuple[TableSource, ...] = (
    TableSource("record_id", field_number=6),
    TableSource("pricing_indicator", field_number=9, grouping="heading"),
    TableSource("multiple_pricing_indicator", field_number=10),
    TableSource("lab_certification", field_number=14, grouping="parent"),
    TableSource("coverage", field_number=16),
    TableSource("mog_payment_group", field_number=19, grouping="heading"),
    TableSource("mog_payment_policy_indicator", field_number=20),
    TableSource("betos", appendix_table="BETOS_TB"),
    TableSource("type_of_service", appendix_table="CMS_TYPE_SRVC_TB"),
    TableSource("action", field_number=30),
)
ASC_PAYMENT_GROUP_FIELD = 17
TABLE_NAMES: tuple[str, ...] = (
    "record_id",
    "pricing_indicator",
    "multiple_pricing_indicator",
    "lab_certification",
    "coverage",
    "asc_payment_group",
    "mog_payment_group",
    "mog_payment_policy_indicator",
    "betos",
    "type_of_service",
    "action",
)


@dataclass(frozen=True)
class CodeRow:
    """One row of a code table CSV."""

    code: str
    description: str
    category: str | None = None


@dataclass(frozen=True)
class ManualCode:
    """A code that the stored layouts lack, placed after `after_code` in its table."""

    table: str
    row: CodeRow
    after_code: str


# Source: CMS "HCPC2026_recordlayout.txt" (January 2026 HCPCS release, as of
# 2025-11-12). Both codes are effective 2024-01-01. The 2016-2019 layouts stored
# with this project predate them.
# NOTE: the category of pricing indicator 40 assumes it sits under the DME heading,
# between 39 and 45, as in the 2026 layout's numbering. Check it against that file.
MANUAL_CODES: tuple[ManualCode, ...] = (
    ManualCode(
        table="pricing_indicator",
        row=CodeRow(
            code="40",
            description="Lymphedema compression treatment items",
            category="Durable Medical Equipment, Prosthetics, Orthotics, Supplies And Surgical Dressings",
        ),
        after_code="39",
    ),
    ManualCode(
        table="betos",
        row=CodeRow(code="O1L", description="Lymphedema compression treatment items"),
        after_code="O1G",
    ),
)

# A layout line: its 1-based line number and its text, tabs expanded, right-stripped.
Line = tuple[int, str]

FIELD_HEADER = re.compile(r"^ {1,3}(?P<number>\d{1,2})\. +\S")
APPENDIX_START = re.compile(r"^\s*TABLE OF CODES APPENDIX\b")
APPENDIX_TABLE_HEADER = re.compile(r"^ ?(?P<name>[A-Z][A-Z0-9_]*_TB) {2,}\S")
CODES_START = re.compile(r"^\s*CODES\s*:\s*$")
# A layout attribute such as "OCCURS MIN: 1" or "DB2      ALIAS : X" ends a CODES block.
ATTRIBUTE_LINE = re.compile(r"^\s*[A-Z][A-Z0-9]*(?: +[A-Z0-9]+)* *:(?:\s|$)")
CODE_LINE = re.compile(r"^(?P<indent> *)(?P<code>[0-9A-Z]{1,3}) *= *(?P<text>\S.*)$")
UNDERLINE = re.compile(r"^\s*-+$")
RELEASE_YEAR = re.compile(r"HCPCS Contractor Record - (?P<year>\d{4})")
# The layouts capitalise the letter after a period inside "e.g.", printing "e.G.".
CAPITALISED_ABBREVIATION = re.compile(r"\b([a-z])\.([A-Z])\.")


def read_layout(path: Path) -> list[Line]:
    """Read a record layout file into numbered lines with tabs expanded."""
    text = path.read_bytes().decode("cp1252")
    lines = text.replace("\r\n", "\n").split("\n")
    # NOTE: the tab width differs between years (the 2016 and 2017 files indent
    # with 8-column tabs, the 2018 and 2019 files with fewer tabs for the same
    # column). The parser classifies code lines by pattern, not by column, so a
    # misaligned tabbed line still parses.
    return [(number, line.expandtabs(8).rstrip()) for number, line in enumerate(lines, start=1)]


def clean_text(parts: list[str]) -> str:
    """Join wrapped layout lines into one description with single spaces."""
    text = " ".join(" ".join(parts).split())
    return CAPITALISED_ABBREVIATION.sub(lambda match: f"{match[1]}.{match[2].lower()}.", text)


def find_release_year(lines: list[Line], source: str) -> int:
    """Return the release year from the "HCPCS Contractor Record - YYYY" title."""
    for _, text in lines:
        match = RELEASE_YEAR.search(text)
        if match:
            return int(match["year"])
    raise ValueError(f"{source}: missing the title 'HCPCS Contractor Record - YYYY', so the release year is unknown")


def split_appendix(lines: list[Line]) -> tuple[list[Line], list[Line]]:
    """Split the layout into the field descriptions and the code appendix."""
    for index, (_, text) in enumerate(lines):
        if APPENDIX_START.match(text):
            return lines[:index], lines[index + 1 :]
    return lines, []


def field_section(lines: list[Line], field_number: int, source: str) -> list[Line]:
    """Return the lines of one numbered field, from its header to the next field."""
    start: int | None = None
    for index, (_, text) in enumerate(lines):
        match = FIELD_HEADER.match(text)
        if not match:
            continue
        if start is not None:
            return lines[start:index]
        if int(match["number"]) == field_number:
            start = index
    if start is None:
        raise ValueError(f"{source}: field {field_number} not found in the record layout")
    return lines[start:]


def codes_block(section: list[Line], field_number: int, source: str) -> list[Line]:
    """Return the lines of a field's "CODES :" block, up to the next attribute line."""
    for index, (_, text) in enumerate(section):
        if CODES_START.match(text):
            block = section[index + 1 :]
            for end, (_, block_text) in enumerate(block):
                if ATTRIBUTE_LINE.match(block_text):
                    return block[:end]
            return block
    raise ValueError(f"{source}: field {field_number} has no 'CODES :' block")


def appendix_block(appendix: list[Line], table: str, source: str) -> list[Line]:
    """Return the lines of one appendix table, up to the next appendix table."""
    start: int | None = None
    for index, (_, text) in enumerate(appendix):
        match = APPENDIX_TABLE_HEADER.match(text)
        if not match:
            continue
        if start is not None:
            return appendix[start:index]
        if match["name"] == table:
            start = index + 1
    if start is None:
        raise ValueError(f"{source}: appendix table {table} not found after 'TABLE OF CODES APPENDIX'")
    return appendix[start:]


@dataclass
class _RowBuilder:
    """A code row whose description may still get continuation lines."""

    code: str
    indent: int
    line_number: int
    parts: list[str]
    heading: str | None = None
    parent: _RowBuilder | None = None

    def build(self) -> CodeRow:
        category = clean_text(self.parent.parts) if self.parent else self.heading
        return CodeRow(self.code, clean_text(self.parts), category)


def parse_code_block(block: list[Line], table: str, grouping: Grouping, source: str) -> list[CodeRow]:
    """Parse `CODE = description` lines, their continuation lines and their headings.

    A continuation line is indented deeper than the code it continues. Any other
    text line is a heading, which only "heading" tables may have.
    """
    rows: list[_RowBuilder] = []
    current: _RowBuilder | None = None
    parent: _RowBuilder | None = None
    heading_parts: list[str] = []
    heading: str | None = None

    for line_number, text in block:
        if not text.strip() or UNDERLINE.match(text):
            continue

        match = CODE_LINE.match(text)
        if match:
            if heading_parts:
                heading = clean_text(heading_parts)
                heading_parts = []
            current = _RowBuilder(match["code"], len(match["indent"]), line_number, [match["text"]], heading)
            if grouping == "parent":
                parent = attach_to_parent(current, parent, rows)
            rows.append(current)
            continue

        indent = len(text) - len(text.lstrip())
        if current is not None and indent > current.indent:
            current.parts.append(text)
            continue

        if grouping != "heading":
            raise ValueError(
                f"{source} line {line_number}: cannot parse {text.strip()!r} in the {table} codes: "
                "it is neither a 'CODE = description' line nor a continuation line indented under one"
            )
        heading_parts.append(text)
        current = None

    return [row.build() for row in check_unique_codes(rows, table, source)]


def attach_to_parent(row: _RowBuilder, parent: _RowBuilder | None, rows: list[_RowBuilder]) -> _RowBuilder | None:
    """Link a code indented deeper than the first code of its block to the last top-level code.

    Returns the top-level code that later indented codes belong to.
    """
    top_level_indent = rows[0].indent if rows else row.indent
    if row.indent > top_level_indent and parent is not None:
        row.parent = parent
        return parent
    return row


def check_unique_codes(rows: list[_RowBuilder], table: str, source: str) -> list[_RowBuilder]:
    """Raise ValueError if the table has no codes or lists a code twice."""
    first_lines: dict[str, int] = {}
    for row in rows:
        if row.code in first_lines:
            raise ValueError(
                f"{source} line {row.line_number}: {table} code {row.code!r} is listed again "
                f"(first on line {first_lines[row.code]})"
            )
        first_lines[row.code] = row.line_number
    if not rows:
        raise ValueError(f"{source}: the {table} code list is empty")
    return rows


def extract_asc_payment_group(fields: list[Line], source: str) -> list[CodeRow]:
    """Read the ASC payment group code from the prose and edit rules of field 17.

    The field has no "CODES :" block. Its prose defines 'YY', and its edit
    rules list "CODE: YY" and "BLANK = Not Approved For ASC". Blank is the absence
    of a code, so the table lists only YY.
    """
    section = field_section(fields, ASC_PAYMENT_GROUP_FIELD, source)
    prose = clean_text([text for _, text in section])
    meaning = re.search(r"The '(?P<code>\w+)' indicator represents that this (?P<meaning>[^.]+)\.", prose)
    edit_rule = re.search(r"CODE: (?P<code>\w+)", prose)
    if not meaning or not edit_rule:
        raise ValueError(
            f"{source}: field {ASC_PAYMENT_GROUP_FIELD} no longer reads "
            "\"The 'YY' indicator represents that this ...\" with the edit rule \"CODE: YY\"; "
            "update extract_asc_payment_group()"
        )
    if meaning["code"] != edit_rule["code"]:
        raise ValueError(
            f"{source}: field {ASC_PAYMENT_GROUP_FIELD} describes code {meaning['code']!r} "
            f"but its edit rule lists {edit_rule['code']!r}"
        )
    description = meaning["meaning"][0].upper() + meaning["meaning"][1:]
    return [CodeRow(edit_rule["code"], description)]


def table_block(table: TableSource, fields: list[Line], appendix: list[Line], source: str) -> list[Line]:
    """Return the lines that list one table's codes, from its field or from the appendix."""
    if table.field_number is not None:
        section = field_section(fields, table.field_number, source)
        return codes_block(section, table.field_number, source)
    if table.appendix_table is not None:
        return appendix_block(appendix, table.appendix_table, source)
    raise ValueError(f"table {table.name} names neither a field number nor an appendix table")


def extract_tables(path: Path) -> tuple[int, dict[str, list[CodeRow]]]:
    """Extract every code table of one layout file, with the layout's release year."""
    source = path.name
    lines = read_layout(path)
    year = find_release_year(lines, source)
    fields, appendix = split_appendix(lines)

    tables: dict[str, list[CodeRow]] = {}
    for table in TABLE_SOURCES:
        block = table_block(table, fields, appendix, source)
        tables[table.name] = parse_code_block(block, table.name, table.grouping, source)
    tables["asc_payment_group"] = extract_asc_payment_group(fields, source)

    return year, {name: tables[name] for name in TABLE_NAMES}


def merge_releases(releases: list[tuple[int, dict[str, list[CodeRow]]]]) -> dict[str, list[CodeRow]]:
    """Merge the tables of several layouts, the newest wording winning.

    A code that only older layouts list is kept, after the codes of the newer layout.
    """
    ordered = sorted(releases, key=lambda release: release[0])
    years = [year for year, _ in ordered]
    if len(set(years)) != len(years):
        raise ValueError(f"two layout files have the same release year: {years}")

    merged: dict[str, list[CodeRow]] = {name: [] for name in TABLE_NAMES}
    for _, tables in ordered:
        for name in TABLE_NAMES:
            newer_codes = {row.code for row in tables[name]}
            older_only = [row for row in merged[name] if row.code not in newer_codes]
            merged[name] = tables[name] + older_only
    return merged


def add_manual_codes(tables: dict[str, list[CodeRow]]) -> dict[str, list[CodeRow]]:
    """Insert MANUAL_CODES after their neighbour code, unless a layout already lists them."""
    result = {name: list(rows) for name, rows in tables.items()}
    for manual in MANUAL_CODES:
        rows = result[manual.table]
        codes = [row.code for row in rows]
        if manual.row.code in codes:
            continue
        position = codes.index(manual.after_code) + 1 if manual.after_code in codes else len(rows)
        rows.insert(position, manual.row)
    return result


def write_table(rows: list[CodeRow], path: Path) -> None:
    """Write one code table as a UTF-8 CSV with an empty field for a missing category."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["code", "description", "category"])
        for row in rows:
            writer.writerow([row.code, row.description, row.category or ""])


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "layouts",
        nargs="+",
        type=Path,
        help="CMS *recordlayout.txt files, in any order (each file's release year decides which wording wins)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help=f"folder for the CSV files (default: {DEFAULT_OUTPUT_DIR})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)

    releases = []
    for path in args.layouts:
        year, tables = extract_tables(path)
        log.info("read %s (release year %d)", path, year)
        releases.append((year, tables))
    tables = add_manual_codes(merge_releases(releases))

    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        write_table(rows, args.output_dir / f"{name}.csv")
        log.info("wrote %s.csv (%d rows)", name, len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
