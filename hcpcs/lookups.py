"""CMS HCPCS code tables and processing notes as polars DataFrames.

The code tables are CSV files in `hcpcs/code_tables/`, generated from the CMS
record layouts by `tools/extract_code_tables.py`. The processing notes come from
the `proc_notes_*.txt` file of each CMS release.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

import polars as pl

# One CSV per table in hcpcs/code_tables/, in record-layout order.
CODE_TABLE_NAMES: tuple[str, ...] = (
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

CODE_TABLE_SCHEMA: dict[str, pl.DataType] = {
    "code": pl.String(),
    "description": pl.String(),
    "category": pl.String(),
}

PROCESSING_NOTE_SCHEMA: dict[str, pl.DataType] = {
    "processing_note_number": pl.String(),
    "note_text": pl.String(),
    "source_file": pl.String(),
    "line_number": pl.Int64(),
}


def load_code_table(name: str) -> pl.DataFrame:
    """Load one code table, such as "betos", from the CSV shipped in this package.

    A row is one code with its CMS description. `category` is the heading the code
    sits under in the layout (pricing_indicator, mog_payment_group), the parent
    code's description (lab_certification sub-codes), or null.
    Raises ValueError for a name not in CODE_TABLE_NAMES.
    """
    if name not in CODE_TABLE_NAMES:
        raise ValueError(f"unknown code table {name!r}; valid names: {', '.join(CODE_TABLE_NAMES)}")

    resource = resources.files("hcpcs").joinpath("code_tables").joinpath(f"{name}.csv")
    data = resource.read_bytes()
    # An empty category field is read as null.
    return pl.read_csv(data, schema=CODE_TABLE_SCHEMA, encoding="utf8")


# A note starts with its 4-digit number and two hyphens: "          0088--TEXT   *".
_NOTE_START = re.compile(r"^\s*(?P<number>\d{4})--(?P<text>.*)$")
# CMS pads each line with spaces up to a "*" marker column. Some lines lack the marker.
_TRAILING_MARKER = re.compile(r"(?:^|\s)\*\s*$")
# The title block before the first note: the "PROCESSING NOTES" title and a rule of underscores.
_TITLE_LINE = re.compile(r"^\s*PROCESSING NOTES\s*$")
_RULE_LINE = re.compile(r"^\s*[_=-]+\s*$")


def _strip_line(line: str) -> str:
    """Remove the trailing "*" marker and the padding around a note line."""
    return _TRAILING_MARKER.sub("", line.rstrip()).strip()


def parse_processing_notes(text: str, source_file: str) -> pl.DataFrame:
    """Parse the text of a CMS proc_notes_*.txt file into one row per processing note.

    A note starts on a line like `0088--"S" CODES ARE ...` and may go on in indented
    continuation lines, which are joined with single spaces. Blank lines, or lines
    holding only the "*" marker, separate the notes. `line_number` is the 1-based
    line where the note starts.

    Raises ValueError, naming the file and line, when a note number appears twice,
    when a note has no text, or when a line is neither part of the title block, a
    note start, a continuation line nor blank.
    """
    notes: dict[str, tuple[int, list[str]]] = {}
    current: list[str] | None = None  # text parts of the note that the next line may continue
    in_title_block = True

    for line_number, line in enumerate(_split_lines(text), start=1):
        content = _strip_line(line)
        if not content:
            current = None
            continue

        start = _NOTE_START.match(line)
        if start:
            in_title_block = False
            current = _start_note(notes, start["number"], _strip_line(start["text"]), source_file, line_number)
            continue

        if in_title_block and (_TITLE_LINE.match(content) or _RULE_LINE.match(line)):
            continue

        if current is not None and line[:1].isspace():
            current.append(content)
            continue

        raise ValueError(
            f"{source_file} line {line_number}: cannot parse {content!r}; expected the title block, "
            "a note start such as '0088--TEXT', an indented continuation line directly under a note, "
            "or a blank line"
        )

    return _notes_frame(notes, source_file)


def _split_lines(text: str) -> list[str]:
    """Split on CRLF, LF or CR only, so line numbers match what a text editor shows."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _start_note(
    notes: dict[str, tuple[int, list[str]]],
    number: str,
    first_text: str,
    source_file: str,
    line_number: int,
) -> list[str]:
    """Record a new note and return its list of text parts; raise ValueError on a repeated number."""
    if number in notes:
        first_line = notes[number][0]
        raise ValueError(
            f"{source_file} line {line_number}: processing note number {number} appears twice "
            f"(first on line {first_line}); each number must be unique in a file"
        )
    parts = [first_text] if first_text else []
    notes[number] = (line_number, parts)
    return parts


def _notes_frame(notes: dict[str, tuple[int, list[str]]], source_file: str) -> pl.DataFrame:
    """Build the notes DataFrame; raise ValueError for a note without text."""
    rows = []
    for number, (line_number, parts) in notes.items():
        note_text = " ".join(" ".join(parts).split())
        if not note_text:
            raise ValueError(f"{source_file} line {line_number}: processing note {number} has no text")
        rows.append(
            {
                "processing_note_number": number,
                "note_text": note_text,
                "source_file": source_file,
                "line_number": line_number,
            }
        )
    return pl.DataFrame(rows, schema=PROCESSING_NOTE_SCHEMA)


def read_processing_notes(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read a CMS proc_notes_*.txt file (Windows-1252 text) into one row per processing note.

    `source_file` is the file name without its folder.
    """
    file_path = Path(path)
    try:
        text = file_path.read_bytes().decode("cp1252")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{file_path.name}: byte {error.start} is not valid Windows-1252 (cp1252) text; "
            "check that this is a CMS processing notes file"
        ) from error
    return parse_processing_notes(text, file_path.name)
