"""Read CMS ANWEB data, fixed-width text or 48-column workbook, into one raw record per code.

Both readers return every field as a trimmed string under the raw column names of
`hcpcs.layout.FIELDS`, with the long description already joined from its continuation
records. They account for every input line as a first record, a continuation record, a
header line, or a rejected line.
"""

import re
from dataclasses import dataclass

import fastexcel
import polars as pl

from hcpcs import layout
from hcpcs.errors import ReleaseFileError

# A first record of a procedure code (A0021) or of a right-aligned modifier ("   A1"),
# then a 5-digit sequence number and the record id.
_STRICT_RECORD = r"^(?:[A-Z][0-9]{4}|   [A-Z0-9]{2})[0-9]{5}[3478]"
# Any line shaped like a record, checked in detail by the record schema afterwards.
_LOOSE_RECORD = r"^.{5}[0-9 ]{5}[3478]"
_MIN_FIRST_RECORD_LENGTH = 293  # through the action code; the filler after it may be trimmed

REJECT_COLUMNS = {
    "line_number": pl.Int64,
    "hcpcs_code": pl.String,
    "field": pl.String,
    "value": pl.String,
    "rule": pl.String,
}



@dataclass
class ReadResult:
    """Contents of one ANWEB file: first records with their fields, rejected lines, and line counts."""

    source_file: str
    source_format: str
    records: pl.DataFrame
    rejects: pl.DataFrame
    lines_read: int
    header_lines: int
    continuation_lines: int

    @property
    def rejected_lines(self) -> int:
        return self.lines_read - self.records.height - self.continuation_lines - self.header_lines


def empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_COLUMNS)


def decode_text(data: bytes, source_file: str) -> str:
    """Decode a CMS text file, which is Windows-1252 (cp1252), refusing files in other encodings."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4096]:
        raise ReleaseFileError(
            source_file,
            "the file is UTF-16 or binary, not the Windows-1252 text CMS publishes",
            "Download the file again from CMS, or save it as Windows-1252 (ANSI) text.",
        )
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        encoding = "utf-8"
    else:
        encoding = "cp1252"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line_number = data.count(b"\n", 0, error.start) + 1
        raise ReleaseFileError(
            source_file,
            f"byte {data[error.start]:#04x} cannot be decoded as {encoding}",
            "Download the file again from CMS; it is not the Windows-1252 text CMS publishes.",
            line_number=line_number,
        ) from error


def split_lines(text: str) -> list[str]:
    """Split on CRLF or LF only; str.splitlines would also split on form feeds and other controls."""
    lines = text.split("\n")
    last = lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if last != "":
        lines.append(last)
    return lines


def read_anweb_text(data: bytes, source_file: str) -> ReadResult:
    """Parse the fixed-width `*ANWEB*.txt` file into one raw record per procedure or modifier code."""
    text = decode_text(data, source_file)
    lines = split_lines(text)
    if text and not text.endswith("\n"):
        # Every CMS text file ends its last line with CRLF; a file that stops inside a line was
        # cut short, even where the cut leaves a line that is still shaped like a record.
        raise ReleaseFileError(
            source_file,
            f"the file ends inside line {len(lines)} without a line break, so it was cut short",
            "Download the file again from CMS; it was truncated.",
            line_number=len(lines),
        )
    frame = pl.DataFrame({"text": lines}, schema={"text": pl.String}).with_row_index("line_number", offset=1)
    frame = frame.with_columns(pl.col("line_number").cast(pl.Int64))

    strict = frame["text"].str.contains(_STRICT_RECORD)
    if not strict.any():
        raise ReleaseFileError(
            source_file,
            f"no HCPCS record found in {len(lines)} lines (a record has the code in columns 1-5 and "
            "record id 3, 4, 7 or 8 in column 11)",
            "Check that this is the ANWEB data file of the release and not a README, NOC list or report.",
        )
    # Disclaimer lines come before the first record in some years (2018-2020); they are
    # counted as header lines and never parsed. The data starts at the first line shaped like
    # a record, so that a damaged record at the top is rejected instead of passing as a header.
    shaped = frame["text"].str.contains(_LOOSE_RECORD)
    first_data_line = int(frame.filter(shaped)["line_number"][0])
    frame = frame.with_columns(
        in_data=pl.col("line_number") >= first_data_line,
        blank=pl.col("text").str.strip_chars() == "",
        shaped=pl.col("text").str.contains(_LOOSE_RECORD),
        length=pl.col("text").str.len_chars(),
        recid=pl.col("text").str.slice(10, 1),
        hcpc_raw=pl.col("text").str.slice(0, 5),
    )
    header = frame.filter(~pl.col("in_data") | pl.col("blank"))
    data = frame.filter(pl.col("in_data") & ~pl.col("blank"))

    not_records = data.filter(~pl.col("shaped"))
    records = data.filter(pl.col("shaped"))
    _check_record_lengths(records, source_file)

    records = _attach_continuations(records)
    first = records.filter(pl.col("recid").is_in(layout.FIRST_RECORD_IDS))
    continuations = records.filter(pl.col("recid").is_in(layout.CONTINUATION_RECORD_IDS))
    orphans = continuations.filter(pl.col("owner_line").is_null())
    attached = continuations.filter(pl.col("owner_line").is_not_null())

    descriptions = _join_descriptions(first, attached)
    parsed = first.select(
        "line_number",
        *[
            pl.col("text").str.slice(field.start, field.end - field.start).str.strip_chars().alias(field.name)
            for field in layout.FIELDS
            if field.name != "long_description"
        ],
    ).join(descriptions, on="line_number", how="left")
    parsed = parsed.select("line_number", *layout.RAW_COLUMNS)
    counts = attached.group_by("owner_line").agg(pl.len().cast(pl.Int64).alias("n"))
    parsed = (
        parsed.join(counts, left_on="line_number", right_on="owner_line", how="left")
        .with_columns(continuation_lines=pl.col("n").fill_null(0))
        .drop("n")
    )

    rejects = pl.concat(
        [
            _line_rejects(not_records, "line", "not a CMS record: column 11 must hold record id 3, 4, 7 or 8"),
            _line_rejects(
                orphans,
                "recid",
                "continuation record without a first record of the same code directly before it",
            ),
        ]
    )
    return ReadResult(
        source_file=source_file,
        source_format="text",
        records=parsed,
        rejects=rejects,
        lines_read=len(lines),
        header_lines=header.height,
        continuation_lines=attached.height,
    )


def _check_record_lengths(records: pl.DataFrame, source_file: str) -> None:
    """Raise on a first record cut short or a record longer than the layout: the file is damaged."""
    is_first = pl.col("recid").is_in(layout.FIRST_RECORD_IDS)
    short = records.filter(is_first & (pl.col("length") < _MIN_FIRST_RECORD_LENGTH))
    if not short.is_empty():
        row = short.row(0, named=True)
        raise ReleaseFileError(
            source_file,
            f"record is cut short: {row['length']} characters where the layout has {layout.RECORD_LENGTH}",
            "Download the file again from CMS; it was truncated or damaged.",
            line_number=row["line_number"],
            field="record length",
            value=str(row["length"]),
        )
    long = records.filter(pl.col("length") > layout.RECORD_LENGTH)
    if not long.is_empty():
        row = long.row(0, named=True)
        raise ReleaseFileError(
            source_file,
            f"record has {row['length']} characters, more than the {layout.RECORD_LENGTH} of the CMS layout",
            "Check that this is a CMS ANWEB file; the record layout does not match.",
            line_number=row["line_number"],
            field="record length",
            value=str(row["length"]),
        )


def _attach_continuations(records: pl.DataFrame) -> pl.DataFrame:
    """Give each continuation record the line number of the first record it continues.

    A continuation belongs to the nearest first record above it when both carry the same code
    and the matching record id (4 after 3, 8 after 7). Any other continuation is an orphan,
    with a null owner.
    """
    is_first = pl.col("recid").is_in(layout.FIRST_RECORD_IDS)
    records = records.with_columns(
        owner_line=pl.when(is_first).then(pl.col("line_number")).forward_fill(),
        owner_code=pl.when(is_first).then(pl.col("hcpc_raw")).forward_fill(),
        owner_recid=pl.when(is_first).then(pl.col("recid")).forward_fill(),
    )
    expected_owner = pl.col("recid").replace({"4": "3", "8": "7"})
    matches = (pl.col("owner_code") == pl.col("hcpc_raw")) & (pl.col("owner_recid") == expected_owner)
    return records.with_columns(
        owner_line=pl.when(is_first | matches).then(pl.col("owner_line")).otherwise(None)
    )


def _join_descriptions(first: pl.DataFrame, continuations: pl.DataFrame) -> pl.DataFrame:
    """Join the 80-character description slices of a code, right-trimmed, with single spaces.

    Only the continuation slices are grouped; about half the codes have none, and their
    description is the first slice alone.
    """
    piece = pl.col("text").str.slice(11, 80).str.strip_chars_end()
    tails = (
        continuations.select("owner_line", "line_number", piece=piece)
        .filter(pl.col("piece") != "")
        .sort("line_number")
        .group_by("owner_line", maintain_order=True)
        .agg(tail=pl.col("piece").str.join(" "))
    )
    return (
        first.select("line_number", head=piece)
        .join(tails, left_on="line_number", right_on="owner_line", how="left")
        .select(
            "line_number",
            long_description=pl.concat_str(
                [pl.when(pl.col("head") != "").then(pl.col("head")), "tail"], separator=" ", ignore_nulls=True
            ).str.strip_chars(),
        )
    )


def _line_rejects(lines: pl.DataFrame, field: str, rule: str) -> pl.DataFrame:
    return lines.select(
        line_number="line_number",
        hcpcs_code=pl.col("hcpc_raw").str.strip_chars(),
        field=pl.lit(field),
        value=pl.col("text").str.slice(0, 40),
        rule=pl.lit(rule),
    ).cast(REJECT_COLUMNS)


# Workbook dates arrive as text "20240101", as numbers (2025-OCT: C9088, E0716) or as date
# cells. All become YYYYMMDD text, so both formats share one date parser.
_NUMBER_TEXT = re.compile(r"^(\d+)\.0+$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T]00:00:00(?:\.0+)?)?$")


def _normalize_cell(column: pl.Expr, is_date: bool, may_hold_number_text: bool) -> pl.Expr:
    cleaned = column.fill_null("").str.strip_chars()
    if may_hold_number_text:
        cleaned = cleaned.str.replace(_NUMBER_TEXT.pattern, "${1}")
    if is_date:
        cleaned = cleaned.str.replace(_ISO_DATE.pattern, "${1}${2}${3}")
    return cleaned


def read_anweb_workbook(data: bytes, source_file: str) -> ReadResult:
    """Parse the 48-column ANWEB workbook (.xlsx or legacy .xls) into one raw record per code."""
    try:
        reader = fastexcel.read_excel(data)
        sheet = reader.load_sheet(0, header_row=None, dtypes="string")
    except Exception as error:  # fastexcel raises its own error classes for every damaged workbook
        raise ReleaseFileError(
            source_file,
            f"the workbook cannot be read ({type(error).__name__}: {error})",
            "Download the file again from CMS; it is damaged or not an Excel workbook.",
        ) from error
    frame = sheet.to_polars()
    rows_read = frame.height
    if frame.width < len(layout.WORKBOOK_HEADERS):
        raise ReleaseFileError(
            source_file,
            f"the first sheet has {frame.width} columns where the CMS workbook has {len(layout.WORKBOOK_HEADERS)}",
            "Check that this is the ANWEB workbook of the release, not a transaction report or NOC list.",
        )
    frame = frame.select(frame.columns[: len(layout.WORKBOOK_HEADERS)])
    frame.columns = list(layout.RAW_COLUMNS)

    header_index = _find_header_row(frame, source_file)
    _check_headers(frame.row(header_index), header_index + 1, source_file)

    # Only a column with a "." somewhere can hold a number written as text ("20240101.0").
    dotted = frame.select(pl.all().str.contains(".", literal=True).any()).row(0, named=True)
    body = frame.slice(header_index + 1).with_columns(
        [
            _normalize_cell(pl.col(name), name in layout.DATE_FIELDS, bool(dotted[name]))
            for name in layout.RAW_COLUMNS
        ]
    )
    body = body.with_row_index("line_number", offset=header_index + 2).with_columns(
        pl.col("line_number").cast(pl.Int64)
    )
    blank = pl.all_horizontal([pl.col(name) == "" for name in layout.RAW_COLUMNS])
    empty_rows = body.filter(blank).height
    body = body.filter(~blank).with_columns(
        # The 2020-OCT workbook stores modifier J5 without its three leading blanks.
        hcpc_raw=pl.col("hcpc"),
        # Workbook sequence numbers step by 10 (0010, 0020) where the text file steps by 100
        # (00100, 00200); they are put on the text file's scale.
        seqnum=pl.when(pl.col("seqnum").str.contains(r"^[0-9]{1,4}$"))
        .then((pl.col("seqnum").cast(pl.Int32) * 10).cast(pl.String).str.zfill(5))
        .otherwise(pl.col("seqnum")),
    )
    if body.is_empty():
        raise ReleaseFileError(
            source_file,
            f"the workbook has a header row (row {header_index + 1}) but no record below it",
            "Download the file again from CMS; a release always lists its codes.",
        )

    body = _attach_continuations(body)
    first = body.filter(pl.col("recid").is_in(layout.FIRST_RECORD_IDS))
    continuations = body.filter(pl.col("recid").is_in(layout.CONTINUATION_RECORD_IDS))
    unknown = body.filter(~pl.col("recid").is_in(layout.RECORD_IDS))
    orphans = continuations.filter(pl.col("owner_line").is_null())
    attached = continuations.filter(pl.col("owner_line").is_not_null())

    # CMS cuts a long description at about 1,000 characters per workbook cell and moves the
    # rest (G0503 in 2019-2023) to a row with record id 4 under the first row.
    tails = (
        attached.sort("line_number")
        .group_by("owner_line", maintain_order=True)
        .agg(tail=pl.col("long_description").str.join(" "), n=pl.len().cast(pl.Int64))
    )
    parsed = (
        first.join(tails, left_on="line_number", right_on="owner_line", how="left")
        .with_columns(
            long_description=pl.when(pl.col("tail").is_not_null())
            .then(pl.concat_str(["long_description", "tail"], separator=" "))
            .otherwise(pl.col("long_description")),
            continuation_lines=pl.col("n").fill_null(0),
        )
        .select("line_number", *layout.RAW_COLUMNS, "continuation_lines")
    )
    rejects = pl.concat(
        [
            _row_rejects(unknown, "recid", "record id must be 3, 4, 7 or 8"),
            _row_rejects(orphans, "recid", "continuation row without a first row of the same code directly above it"),
        ]
    )
    return ReadResult(
        source_file=source_file,
        source_format="workbook",
        records=parsed,
        rejects=rejects,
        lines_read=rows_read,
        header_lines=header_index + 1 + empty_rows,
        continuation_lines=attached.height,
    )


def _find_header_row(frame: pl.DataFrame, source_file: str) -> int:
    """Return the 0-based index of the row whose first cell is HCPC (row 1, 8 or 11 in real files)."""
    first_cells = frame["hcpc"].fill_null("").str.strip_chars().str.to_uppercase()
    matches = first_cells.eq("HCPC").arg_true()
    if matches.is_empty():
        raise ReleaseFileError(
            source_file,
            "no header row with HCPC in column A found in the first sheet",
            "Check that this is the ANWEB workbook of the release; its header row starts with HCPC, SEQNUM, RECID.",
        )
    return int(matches[0])


def _check_headers(header_row: tuple, row_number: int, source_file: str) -> None:
    found = [re.sub(r"\s+", " ", (cell or "").strip()).upper() for cell in header_row]
    for position, (expected, actual) in enumerate(zip(layout.WORKBOOK_HEADERS, found), start=1):
        if actual != expected:
            raise ReleaseFileError(
                source_file,
                f"column {position} is headed {actual!r} where the CMS layout has {expected!r}",
                "Restore the CMS column headers, or download the workbook again from CMS.",
                line_number=row_number,
                field=expected,
                value=actual,
            )


def _row_rejects(rows: pl.DataFrame, field: str, rule: str) -> pl.DataFrame:
    return rows.select(
        line_number="line_number",
        hcpcs_code=pl.col("hcpc").str.strip_chars(),
        field=pl.lit(field),
        value=pl.col(field),
        rule=pl.lit(rule),
    ).cast(REJECT_COLUMNS)
