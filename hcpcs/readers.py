"""Read CMS ANWEB data, fixed-width text or 48-column workbook, into one raw record per code.

Both readers return every field as a trimmed string under the raw column names of
`hcpcs.layout.FIELDS`, with the long description already joined from its continuation
records. They account for every input line as a first record, a continuation record, a
header line, or a rejected line.
"""

import functools
import re
from dataclasses import dataclass

import fastexcel
import polars as pl

from hcpcs import layout
from hcpcs.errors import ReleaseFileError

# A first record of a procedure code (A0021) or of a right-aligned modifier ("   A1"),
# then a 5-digit sequence number and the record id.
_STRICT_RECORD = r"^(?:[A-Z][0-9]{4}|   [A-Z0-9]{2})[0-9]{5}[3478]"
_STRICT_RECORD_MATCH = re.compile(_STRICT_RECORD).match
_IS_FIRST_RECORD = (pl.col("recid") == layout.PROCEDURE_FIRST) | (pl.col("recid") == layout.MODIFIER_FIRST)
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


_ASCII_BYTES = bytes(range(128))
_ASCII_SCAN_CHUNK = 1 << 16
_UTF8_BOM = b"\xef\xbb\xbf"


def _cp1252_utf8_table() -> dict[int, bytes]:
    table = {}
    for byte in range(128, 256):
        try:
            table[byte] = bytes((byte,)).decode("cp1252").encode("utf-8")
        except UnicodeDecodeError:  # 0x81, 0x8d, 0x8f, 0x90 and 0x9d are not defined in cp1252
            pass
    return table


_CP1252_TO_UTF8 = _cp1252_utf8_table()


def text_as_utf8(data: bytes, source_file: str) -> bytes:
    """Return a CMS text file as UTF-8 bytes, rejecting what `decode_text` rejects.

    CMS files are ASCII except for a few Windows-1252 characters such as curly quotes and
    dashes. Only those bytes are rewritten, because decoding the whole file to a Python string
    and encoding it again took about five times as long on the 2019 file.
    """
    if data.startswith(_UTF8_BOM) or data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4096]:
        return decode_text(data, source_file).encode("utf-8")
    # bytes.isascii checks a chunk several times faster than bytes.translate walks it, so
    # only the chunks that have a Windows-1252 character are searched byte by byte.
    positions = []
    for offset in range(0, len(data), _ASCII_SCAN_CHUNK):
        chunk = data[offset : offset + _ASCII_SCAN_CHUNK]
        if chunk.isascii():
            continue
        distinct = set(chunk.translate(None, _ASCII_BYTES))
        if len(positions) > 10_000 or not distinct <= _CP1252_TO_UTF8.keys():
            # decode_text raises for a byte that cp1252 does not define, naming its line.
            return decode_text(data, source_file).encode("utf-8")
        positions.extend(offset + position for byte in distinct for position in _positions(chunk, bytes((byte,))))
    if not positions:
        return data
    positions.sort()
    # Slices of a memoryview share the file's bytes, where slices of bytes would copy them.
    view = memoryview(data)
    pieces = []
    start = 0
    for position in positions:
        pieces.append(view[start:position])
        pieces.append(_CP1252_TO_UTF8[data[position]])
        start = position + 1
    pieces.append(view[start:])
    return b"".join(pieces)


def _positions(data: bytes, byte: bytes):
    position = data.find(byte)
    while position != -1:
        yield position
        position = data.find(byte, position + 1)


# Each field of a first record as its trimmed slice. The long description is joined from the
# continuation records and filled in afterwards.
_TEXT_FIELD_SLICES = tuple(
    pl.col("text").str.slice(field.start, field.end - field.start).str.strip_chars().alias(field.name)
    if field.name != "long_description"
    else pl.lit(None, pl.String).alias(field.name)
    for field in layout.FIELDS
)


def read_anweb_text(data: bytes, source_file: str) -> ReadResult:
    """Parse the fixed-width `*ANWEB*.txt` file into one raw record per procedure or modifier code."""
    # Lines end at LF, and a CR before the LF is dropped. Other control characters stay in the line.
    lines = pl.read_lines(
        text_as_utf8(data, source_file), name="text", row_index_name="line_number", row_index_offset=1
    )
    if data and not data.endswith(b"\n"):
        # Every CMS text file ends its last line with CRLF; a file that stops inside a line was
        # cut short, even where the cut leaves a line that is still shaped like a record.
        raise ReleaseFileError(
            source_file,
            f"the file ends inside line {lines.height} without a line break, so it was cut short",
            "Download the file again from CMS; it was truncated.",
            line_number=lines.height,
        )
    text = pl.col("text")
    frame = lines.with_columns(
        pl.col("line_number").cast(pl.Int64),
        shaped=text.str.contains(_LOOSE_RECORD),
        blank=~text.str.contains(r"\S"),
        length=text.str.len_chars(),
        recid=text.str.slice(10, 1),
        hcpc_raw=text.str.slice(0, 5),
    )
    shaped_rows = frame["shaped"].arg_true()
    if shaped_rows.is_empty():
        raise _no_record_error(source_file, lines.height)
    # Disclaimer lines come before the first record in some years (2018-2020); they are
    # counted as header lines and never parsed. The data starts at the first line shaped like
    # a record, so that a damaged record at the top is rejected instead of passing as a header.
    body = frame.slice(shaped_rows[0])
    header_lines = shaped_rows[0] + body["blank"].sum()
    body = body.filter(~pl.col("blank"))
    not_records = body.filter(~pl.col("shaped"))
    records = body.filter(pl.col("shaped"))
    # The first record line nearly always passes the strict pattern, so the scan of every
    # record runs only when it fails.
    if not _STRICT_RECORD_MATCH(records["text"][0]) and not records["text"].str.contains(_STRICT_RECORD).any():
        raise _no_record_error(source_file, lines.height)
    _check_record_lengths(records, source_file)

    records = _attach_continuations(records)
    owned = records.filter(pl.col("owner_line").is_not_null())
    orphans = records.filter(pl.col("owner_line").is_null())
    first = owned.filter(_IS_FIRST_RECORD)

    # A first record and its continuations are adjacent, so owner_line ascends and grouping
    # by it in order of appearance gives one group per first record, in the order of `first`.
    piece = text.str.slice(11, 80).str.strip_chars_end()
    groups = (
        owned.select(pl.col("owner_line").set_sorted(), piece=pl.when(piece != "").then(piece))
        .group_by("owner_line", maintain_order=True)
        .agg(pieces="piece", continuation_lines=(pl.len() - 1).cast(pl.Int64))
    )
    parsed = first.select("line_number", *_TEXT_FIELD_SLICES).with_columns(
        long_description=groups["pieces"].list.join(" ").str.strip_chars(),
        continuation_lines=groups["continuation_lines"],
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
        lines_read=lines.height,
        header_lines=header_lines,
        continuation_lines=owned.height - first.height,
    )


def _no_record_error(source_file: str, line_count: int) -> ReleaseFileError:
    return ReleaseFileError(
        source_file,
        f"no HCPCS record found in {line_count} lines (a record has the code in columns 1-5 and "
        "record id 3, 4, 7 or 8 in column 11)",
        "Check that this is the ANWEB data file of the release and not a README, NOC list or report.",
    )


def _check_record_lengths(records: pl.DataFrame, source_file: str) -> None:
    """Raise on a first record cut short or a record longer than the layout: the file is damaged."""
    short = _IS_FIRST_RECORD & (pl.col("length") < _MIN_FIRST_RECORD_LENGTH)
    long = pl.col("length") > layout.RECORD_LENGTH
    found = records.select(short=short.any(), long=long.any()).row(0, named=True)
    if found["short"]:
        row = records.filter(short).row(0, named=True)
        raise ReleaseFileError(
            source_file,
            f"record is cut short: {row['length']} characters where the layout has {layout.RECORD_LENGTH}",
            "Download the file again from CMS; it was truncated or damaged.",
            line_number=row["line_number"],
            field="record length",
            value=str(row["length"]),
        )
    if found["long"]:
        row = records.filter(long).row(0, named=True)
        raise ReleaseFileError(
            source_file,
            f"record has {row['length']} characters, more than the {layout.RECORD_LENGTH} of the CMS layout",
            "Check that this is a CMS ANWEB file; the record layout does not match.",
            line_number=row["line_number"],
            field="record length",
            value=str(row["length"]),
        )


def _attach_continuations(records: pl.DataFrame) -> pl.DataFrame:
    """Give each record the line number of the first record it belongs to, as `owner_line`.

    A first record owns itself. A continuation belongs to the nearest first record above it
    when both carry the same code and the matching record id (4 after 3, 8 after 7). Any
    other continuation is an orphan, with a null owner.
    """
    recid = pl.col("recid")
    is_first = _IS_FIRST_RECORD

    def from_first_above(name: str) -> pl.Expr:
        return pl.when(is_first).then(pl.col(name)).forward_fill()

    expected_owner = (
        pl.when(recid == layout.PROCEDURE_CONTINUATION)
        .then(pl.lit(layout.PROCEDURE_FIRST))
        .when(recid == layout.MODIFIER_CONTINUATION)
        .then(pl.lit(layout.MODIFIER_FIRST))
        .otherwise(recid)
    )
    matches = (from_first_above("hcpc_raw") == pl.col("hcpc_raw")) & (from_first_above("recid") == expected_owner)
    return records.with_columns(owner_line=pl.when(is_first | matches).then(from_first_above("line_number")))


def _line_rejects(lines: pl.DataFrame, field: str, rule: str) -> pl.DataFrame:
    if lines.is_empty():
        return empty_rejects()
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
_FREE_TEXT_FIELDS = ("long_description", "short_description")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T]00:00:00(?:\.0+)?)?$")


@functools.cache
def _cell_expression(name: str, filled: bool, may_hold_iso_date: bool, may_hold_number_text: bool) -> pl.Expr:
    """Return the clean-up of one workbook column, built once per set of arguments.

    Reusing the expression is safe because polars expressions are immutable.
    """
    if not filled:
        return pl.lit("", pl.String).alias(name)
    return _normalize_cell(pl.col(name), may_hold_iso_date, may_hold_number_text)


def _normalize_cell(column: pl.Expr, may_hold_iso_date: bool, may_hold_number_text: bool) -> pl.Expr:
    cleaned = column.fill_null("").str.strip_chars()
    if may_hold_number_text:
        cleaned = cleaned.str.replace(_NUMBER_TEXT.pattern, "${1}")
    if may_hold_iso_date:
        cleaned = cleaned.str.replace(_ISO_DATE.pattern, "${1}${2}${3}")
    return cleaned


def read_anweb_workbook(data: bytes, source_file: str) -> ReadResult:
    """Parse the 48-column ANWEB workbook (.xlsx or legacy .xls) into one raw record per code."""
    try:
        # eager=True returns an Arrow record batch. Converting it with pl.from_arrow took about
        # 7 ms less than the lazy sheet's to_polars() on the 2019 workbook.
        sheet = fastexcel.read_excel(data).load_sheet(0, header_row=None, dtypes="string", eager=True)
    except Exception as error:  # fastexcel raises its own error classes for every damaged workbook
        raise ReleaseFileError(
            source_file,
            f"the workbook cannot be read ({type(error).__name__}: {error})",
            "Download the file again from CMS; it is damaged or not an Excel workbook.",
        ) from error
    frame = pl.from_arrow(sheet)
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

    # A column with no cell below the header becomes blank text without being read.
    body = frame.slice(header_index + 1)
    null_counts = body.null_count().row(0, named=True)
    filled = [name for name in layout.RAW_COLUMNS if null_counts[name] < body.height]
    # The rewrites run only on columns that need them: number text ("20240101.0") ends in "."
    # and zeros, and an ISO date has a "-". Descriptions are free text, where "1.0" stays.
    checks = [
        *(
            pl.col(name).str.contains(r"\.0+\s*$").any().alias(f"{name}.number")
            for name in filled
            if name not in _FREE_TEXT_FIELDS
        ),
        *(
            pl.col(name).str.contains("-", literal=True).any().alias(f"{name}.date")
            for name in filled
            if name in layout.DATE_FIELDS
        ),
    ]
    needs = body.select(checks).row(0, named=True) if checks else {}
    body = body.with_columns(
        _cell_expression(name, name in filled, needs.get(f"{name}.date", False), needs.get(f"{name}.number", False))
        for name in layout.RAW_COLUMNS
    )
    body = body.with_columns(
        line_number=pl.int_range(header_index + 2, header_index + 2 + body.height, dtype=pl.Int64),
        blank=pl.sum_horizontal(pl.col(filled).str.len_bytes()) == 0 if filled else pl.lit(True),
    )
    empty_rows = body["blank"].sum()
    body = body.filter(~pl.col("blank")).drop("blank")
    if body.is_empty():
        raise ReleaseFileError(
            source_file,
            f"the workbook has a header row (row {header_index + 1}) but no record below it",
            "Download the file again from CMS; a release always lists its codes.",
        )
    body = _attach_continuations(
        body.with_columns(
            # The 2020-OCT workbook stores modifier J5 without its three leading blanks.
            hcpc_raw=pl.col("hcpc"),
            # Workbook sequence numbers step by 10 (0010, 0020) where the text file steps by 100
            # (00100, 00200); they are put on the text file's scale.
            seqnum=pl.when(pl.col("seqnum").str.contains(r"^[0-9]{1,4}$"))
            .then((pl.col("seqnum").cast(pl.Int32) * 10).cast(pl.String).str.zfill(5))
            .otherwise(pl.col("seqnum")),
        )
    )
    owned = body.filter(pl.col("owner_line").is_not_null())
    not_owned = body.filter(pl.col("owner_line").is_null())
    first = owned.filter(_IS_FIRST_RECORD)

    # CMS cuts a long description at about 1,000 characters per workbook cell and moves the
    # rest (G0503 in 2019-2023) to a row with record id 4 under the first row. As in the text
    # reader, the groups come in the order of `first`.
    groups = owned.group_by("owner_line", maintain_order=True).agg(
        pieces="long_description", continuation_lines=(pl.len() - 1).cast(pl.Int64)
    )
    parsed = first.select("line_number", *layout.RAW_COLUMNS).with_columns(
        long_description=groups["pieces"].list.join(" "), continuation_lines=groups["continuation_lines"]
    )
    known = pl.col("recid").is_in(layout.RECORD_IDS)
    rejects = pl.concat(
        [
            _row_rejects(not_owned.filter(~known), "recid", "record id must be 3, 4, 7 or 8"),
            _row_rejects(
                not_owned.filter(known),
                "recid",
                "continuation row without a first row of the same code directly above it",
            ),
        ]
    )
    return ReadResult(
        source_file=source_file,
        source_format="workbook",
        records=parsed,
        rejects=rejects,
        lines_read=rows_read,
        header_lines=header_index + 1 + empty_rows,
        continuation_lines=owned.height - first.height,
    )


def _find_header_row(frame: pl.DataFrame, source_file: str) -> int:
    """Return the 0-based index of the row whose first cell is HCPC (row 1, 8 or 11 in real files)."""
    # The header is near the top, so the first rows are searched before the whole column.
    for cells in (frame["hcpc"].head(50), frame["hcpc"]):
        matches = cells.fill_null("").str.strip_chars().str.to_uppercase().eq("HCPC").arg_true()
        if not matches.is_empty():
            return int(matches[0])
    raise ReleaseFileError(
        source_file,
        "no header row with HCPC in column A found in the first sheet",
        "Check that this is the ANWEB workbook of the release; its header row starts with HCPC, SEQNUM, RECID.",
    )


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
    if rows.is_empty():
        return empty_rejects()
    return rows.select(
        line_number="line_number",
        hcpcs_code=pl.col("hcpc").str.strip_chars(),
        field=pl.lit(field),
        value=pl.col(field),
        rule=pl.lit(rule),
    ).cast(REJECT_COLUMNS)
