"""Tests for hcpcs.readers: every CMS format trap, each on a fixture file written for it."""

from datetime import date, datetime

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcpcs.errors import ReleaseFileError
from hcpcs.normalize import _collapse_whitespace
from hcpcs.readers import read_anweb_text, read_anweb_workbook, text_as_utf8
from tests.cms_files import continuation_record, first_record, workbook_row, write_text, write_workbook

DISCLAIMERS_2018 = [
    "***Disclaimers",
    "",
    "-- Discontinued procedure and modifier codes will appear in the HCPCS file for four years.",
]


def read_text(tmp_path, lines, **options):
    path = write_text(tmp_path / "HCPC2024_JAN_ANWEB.txt", lines, **options)
    return read_anweb_text(path.read_bytes(), path.name)


def read_workbook(path):
    return read_anweb_workbook(path.read_bytes(), path.name)


def test_text_reads_fields_by_position(tmp_path):
    result = read_text(tmp_path, [first_record("S9326", "Home infusion therapy", price1="00", mult_pi="9", cov="I",
                                               procnote="0088", betos="Z2", tos1="9", add_dt="20020101",
                                               act_eff_dt="20020101", action_cd="N")])
    row = result.records.row(0, named=True)
    assert row["hcpc"] == "S9326"
    assert row["recid"] == "3"
    assert row["long_description"] == "Home infusion therapy"
    assert row["price1"] == "00"
    assert row["procnote"] == "0088"
    assert row["betos"] == "Z2"
    assert row["add_dt"] == "20020101"
    assert row["action_cd"] == "N"
    assert row["line_number"] == 1


def test_text_joins_continuation_records(tmp_path):
    lines = [
        first_record("A0080", "Non-emergency transportation, per mile - vehicle provided by volunteer"),
        continuation_record("A0080", "(individual or organization), with no vested interest"),
    ]
    result = read_text(tmp_path, lines)
    assert result.records["long_description"].to_list() == [
        "Non-emergency transportation, per mile - vehicle provided by volunteer "
        "(individual or organization), with no vested interest"
    ]
    assert result.records["continuation_lines"].to_list() == [1]
    assert result.continuation_lines == 1


@pytest.mark.parametrize("padded", [False, True], ids=["trimmed-to-91", "padded-to-320"])
def test_text_continuation_length_either_way(tmp_path, padded):
    lines = [first_record("AD", "Medical supervision by a physician: more than four concurrent anesthesia"),
             continuation_record("AD", "procedures", padded=padded)]
    result = read_text(tmp_path, lines)
    assert result.records["hcpc"].to_list() == ["AD"]
    assert result.records["recid"].to_list() == ["7"]
    assert result.records["long_description"][0].endswith("anesthesia procedures")


def test_text_counts_disclaimer_lines_as_header(tmp_path):
    result = read_text(tmp_path, DISCLAIMERS_2018 + [first_record("A0021"), first_record("A0080")])
    assert result.header_lines == 3
    assert result.records["line_number"].to_list() == [4, 5]
    assert result.rejected_lines == 0


def test_text_damaged_first_record_rejected(tmp_path):
    result = read_text(tmp_path, DISCLAIMERS_2018 + [first_record("A0021").lower(), first_record("A0080")])
    assert result.header_lines == 3
    assert result.records["hcpc"].to_list() == ["a0021", "A0080"]


def test_text_decodes_cp1252_disclaimer(tmp_path):
    lines = ["Note regarding coverage and payment indicators for codes in CMS\u2019 2020 HCPCS Update",
             "*Inclusion or exclusion\u00a0of a procedure", first_record("A0021")]
    result = read_text(tmp_path, lines)
    assert result.header_lines == 2
    assert result.records.height == 1


def test_text_cp1252_characters_keep_field_positions(tmp_path):
    # Each Windows-1252 character is one byte in the file and two or three in UTF-8, so the
    # fields after it must still be cut by character.
    result = read_text(tmp_path, [first_record("A0021", "Patient\u2019s caf\u00e9 \u2013 test", cov="I",
                                               betos="Z2", action_cd="N"),
                                  continuation_record("A0021", "na\u00efve \u201cquoted\u201d")])
    row = result.records.row(0, named=True)
    assert row["long_description"] == "Patient\u2019s caf\u00e9 \u2013 test na\u00efve \u201cquoted\u201d"
    assert row["short_description"] == "Patient\u2019s caf\u00e9 \u2013 test"
    assert row["cov"] == "I"
    assert row["betos"] == "Z2"
    assert row["action_cd"] == "N"
    assert row["continuation_lines"] == 1


def test_text_trailing_blank_line_counted(tmp_path):
    result = read_text(tmp_path, [first_record("A0021"), ""])
    assert result.lines_read == 2
    assert result.header_lines == 1
    assert result.rejected_lines == 0


def test_text_accepts_lf_line_endings(tmp_path):
    result = read_text(tmp_path, [first_record("A0021"), first_record("A0080")], newline="\n")
    assert result.records.height == 2


def test_text_utf16_is_rejected(tmp_path):
    path = tmp_path / "HCPC2024_JAN_ANWEB.txt"
    path.write_bytes((first_record("A0021") + "\r\n").encode("utf-16"))
    with pytest.raises(ReleaseFileError, match="UTF-16"):
        read_anweb_text(path.read_bytes(), path.name)


def test_text_undefined_cp1252_byte_names_line(tmp_path):
    path = tmp_path / "HCPC2024_JAN_ANWEB.txt"
    path.write_bytes(first_record("A0021").encode() + b"\r\n" + first_record("A0080", "Bad \x81 byte").encode("latin-1") + b"\r\n")
    with pytest.raises(ReleaseFileError, match="line 2"):
        read_anweb_text(path.read_bytes(), path.name)


CP1252_BYTES = [byte for byte in range(256) if byte not in (0x00, 0x81, 0x8D, 0x8F, 0x90, 0x9D)]


@given(st.lists(st.sampled_from(CP1252_BYTES), max_size=200))
def test_text_as_utf8_matches_full_decode(values):
    # The rewritten bytes are themselves high bytes (0x92 becomes E2 80 99, and 0xE2 is "a" with
    # a circumflex), so a rewrite that ran byte value by byte value would corrupt earlier ones.
    data = bytes(values)
    assert text_as_utf8(data, "x.txt") == data.decode("cp1252").encode("utf-8")


def test_text_as_utf8_many_high_bytes_and_bom():
    # 90,000 rewritten bytes take the path that decodes the whole file instead.
    data = "’âé".encode("cp1252") * 30000
    assert text_as_utf8(data, "x.txt") == data.decode("cp1252").encode("utf-8")
    assert text_as_utf8(b"\xef\xbb\xbfA0021 \xe2\x80\x99", "x.txt") == "A0021 ’".encode("utf-8")


def test_text_lines_split_on_lf_only(tmp_path):
    # Only LF ends a line, so a CR or a form feed inside a line stays part of it.
    path = tmp_path / "HCPC2024_JAN_ANWEB.txt"
    path.write_bytes(b"Note\rwith CR\x0cand FF\r\n\r\n" + first_record("A0021").encode() + b"\r\n")
    result = read_anweb_text(path.read_bytes(), path.name)
    assert result.lines_read == 3
    assert result.header_lines == 2
    assert result.records["line_number"].to_list() == [3]


@given(st.lists(st.text(alphabet=st.sampled_from("ab .\t\n\r\x0b\x0c\x1f\x85\xa0\u2003\u3000"), max_size=12), max_size=20))
def test_collapse_whitespace_matches_regex(values):
    series = pl.Series(values, dtype=pl.String)
    assert _collapse_whitespace(series).to_list() == series.str.replace_all(r"\s+", " ").to_list()


def test_text_truncated_record_is_file_error(tmp_path):
    cut = first_record("A0080")[:150]
    with pytest.raises(ReleaseFileError, match="cut short") as error:
        read_text(tmp_path, [first_record("A0021"), cut])
    assert error.value.line_number == 2
    assert "Download the file again" in str(error.value)


def test_text_without_records_is_file_error(tmp_path):
    with pytest.raises(ReleaseFileError, match="no HCPCS record"):
        read_text(tmp_path, ["HCPCS 2024 README", "This zip holds the annual file."])


def test_text_orphan_continuation_rejected(tmp_path):
    lines = [continuation_record("A0080", "orphan text"), first_record("A0021"), continuation_record("A0090", "wrong code")]
    result = read_text(tmp_path, lines)
    assert result.records["hcpc"].to_list() == ["A0021"]
    assert result.rejects["line_number"].to_list() == [1, 3]
    assert result.rejects["rule"][0].startswith("continuation record without a first record")
    assert result.rejected_lines == 2


def test_text_line_with_lone_quote_in_description(tmp_path):
    result = read_text(tmp_path, [first_record("L3000", 'Foot insert, 3/4" long, "ucb" type')])
    assert result.records["long_description"].to_list() == ['Foot insert, 3/4" long, "ucb" type']


def test_workbook_header_in_first_row(tmp_path):
    path = write_workbook(tmp_path / "HCPC2016_CONTR_ANWEB.xlsx", [workbook_row("S9326", "Home infusion therapy")],
                          sheet_name="hcpc16_2_")
    result = read_workbook(path)
    assert result.records["hcpc"].to_list() == ["S9326"]
    assert result.records["line_number"].to_list() == [2]
    assert result.header_lines == 1


# Row 61 is past the first rows that the reader searches before the whole column.
@pytest.mark.parametrize("disclaimer_rows", [7, 10, 60], ids=["header-row-8", "header-row-11", "header-row-61"])
def test_workbook_header_found_below_disclaimers(tmp_path, disclaimer_rows):
    disclaimers = ["***Disclaimers"] + [""] * (disclaimer_rows - 1)
    path = write_workbook(tmp_path / "anweb.xlsx", [workbook_row("A0021")], disclaimers=disclaimers)
    result = read_workbook(path)
    assert result.records["line_number"].to_list() == [disclaimer_rows + 2]
    assert result.header_lines == disclaimer_rows + 1


def test_workbook_numeric_cells_become_text(tmp_path):
    rows = [
        workbook_row("J5", "Off-the-shelf orthotic", recid=7, seqnum=10, add_dt=20201001, act_eff_dt=20201001),
        workbook_row("C9088", "Instillation, bupivacaine and meloxicam", add_dt=20220101.0, act_eff_dt="20251001",
                     term_dt=20250930, anest_bu=0),
    ]
    result = read_workbook(write_workbook(tmp_path / "anweb.xlsx", rows))
    first, second = result.records.rows(named=True)
    assert first["hcpc"] == "J5"
    assert first["recid"] == "7"
    assert first["seqnum"] == "00100"
    assert first["add_dt"] == "20201001"
    assert second["add_dt"] == "20220101"
    assert second["term_dt"] == "20250930"
    assert second["anest_bu"] == "0"


def test_workbook_number_text_rewritten_outside_descriptions(tmp_path):
    rows = [workbook_row("A0021", "Version 2.0", anest_bu="5.00", act_eff_dt="20240101.0 "),
            workbook_row("A0080", "10.0")]
    result = read_workbook(write_workbook(tmp_path / "anweb.xlsx", rows))
    first, second = result.records.rows(named=True)
    assert (first["anest_bu"], first["act_eff_dt"]) == ("5", "20240101")
    assert (first["long_description"], second["long_description"]) == ("Version 2.0", "10.0")
    assert second["short_description"] == "10.0"


def test_workbook_date_cells_become_yyyymmdd(tmp_path):
    rows = [workbook_row("E0716", "Supplies for intravaginal device", add_dt=datetime(2024, 10, 1),
                         act_eff_dt=date(2024, 10, 1))]
    result = read_workbook(write_workbook(tmp_path / "anweb.xlsx", rows))
    assert result.records["add_dt"].to_list() == ["20241001"]
    assert result.records["act_eff_dt"].to_list() == ["20241001"]


def test_workbook_trailing_empty_rows_counted(tmp_path):
    path = write_workbook(tmp_path / "anweb.xlsx", [workbook_row("A0021")], trailing_empty_rows=5)
    result = read_workbook(path)
    assert result.records.height == 1
    assert result.lines_read == result.records.height + result.header_lines + result.rejected_lines


def test_workbook_split_description_rejoined(tmp_path):
    rows = [
        workbook_row("G0503", "Subsequent psychiatric collaborative care management ... other treatment"),
        workbook_row("G0503", "goals and are prepared for discharge from active treatment", recid="4", seqnum="0020",
                     short_description=None, price1=None, mult_pi=None, cov=None, betos=None, tos1=None,
                     anest_bu=None, add_dt=None, act_eff_dt=None, action_cd=None),
    ]
    result = read_workbook(write_workbook(tmp_path / "anweb.xlsx", rows))
    assert result.records["hcpc"].to_list() == ["G0503"]
    assert result.records["long_description"].to_list() == [
        "Subsequent psychiatric collaborative care management ... other treatment "
        "goals and are prepared for discharge from active treatment"
    ]
    assert result.continuation_lines == 1


def test_workbook_renamed_column_is_file_error(tmp_path):
    headers = list(__import__("hcpcs.layout", fromlist=["x"]).WORKBOOK_HEADERS)
    headers[45] = "ACTION EFFECTIVE"
    path = write_workbook(tmp_path / "anweb.xlsx", [workbook_row("A0021")], headers=headers)
    with pytest.raises(ReleaseFileError, match="column 46 is headed 'ACTION EFFECTIVE'") as error:
        read_workbook(path)
    assert error.value.field == "ACT EFF DT"


def test_workbook_without_header_is_file_error(tmp_path):
    path = write_workbook(tmp_path / "anweb.xlsx", [], headers=["CODE", "DESCRIPTION"])
    with pytest.raises(ReleaseFileError):
        read_workbook(path)


def test_workbook_not_excel_is_file_error(tmp_path):
    path = tmp_path / "anweb.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(ReleaseFileError, match="cannot be read"):
        read_workbook(path)


def test_text_and_workbook_give_same_fields(tmp_path):
    text = read_text(tmp_path, [first_record("S9326", "Home infusion therapy", procnote="0088")])
    workbook = read_workbook(write_workbook(tmp_path / "anweb.xlsx",
                                            [workbook_row("S9326", "Home infusion therapy", procnote="0088")]))
    columns = [c for c in text.records.columns if c != "line_number"]
    assert text.records.select(columns).to_dicts() == workbook.records.select(columns).to_dicts()
