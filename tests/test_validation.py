"""Tests for record validation and file-level failures, one fixture release per case."""

import pytest

from hcpcs import layout
from hcpcs.errors import RawFolderError, ReleaseCountDropError, ReleaseFileError
from hcpcs.releases import discover_releases, read_release
from hcpcs.stage import load_release
from hcpcs.warehouse import assemble
from tests.cms_files import continuation_record, first_record, workbook_row, write_text, write_workbook, write_zip

TEXT_NAME = "HCPC2024_JAN_ANWEB.txt"


def load_text_release(tmp_path, lines, folder="2024-annual"):
    write_text(tmp_path / folder / TEXT_NAME, lines)
    return load_release(read_release(tmp_path / folder), "run-1")


def rejects_of(staged):
    return staged.rejects.select("line_number", "hcpcs_code", "field", "value", "outcome").to_dicts()


def test_lone_quote_in_description_loads(tmp_path):
    staged = load_text_release(tmp_path, [first_record("L3000", 'Foot insert, removable, molded to patient model, "ucb')])
    assert staged.records["long_description"].to_list() == ['Foot insert, removable, molded to patient model, "ucb']
    assert staged.rejects.is_empty()


def test_invalid_date_rejects_record(tmp_path):
    staged = load_text_release(tmp_path, [first_record("A0021"), first_record("A0080", act_eff_dt="20231340")])
    assert staged.records["hcpcs_code"].to_list() == ["A0021"]
    assert rejects_of(staged) == [
        {"line_number": 2, "hcpcs_code": "A0080", "field": "act_eff_dt", "value": "20231340", "outcome": "record rejected"}
    ]
    assert staged.rejects["rule"][0] == "blank or a calendar date as YYYYMMDD"
    assert staged.rejects["run_id"][0] == "run-1"
    assert staged.rejects["source_file"][0] == f"2024-annual/{TEXT_NAME}"


def test_bad_asc_date_nulls_field_only(tmp_path):
    staged = load_text_release(tmp_path, [first_record("C9488", asc_grp="YY", asc_dt="170401")])
    assert staged.records["hcpcs_code"].to_list() == ["C9488"]
    assert staged.records["asc_payment_group_effective_date"].to_list() == [None]
    assert rejects_of(staged)[0]["outcome"] == "field set to NULL"
    assert staged.summary["nulled_fields"] == 1
    assert staged.summary["rejected_records"] == 0


def test_unknown_action_code_rejects_record(tmp_path):
    staged = load_text_release(tmp_path, [first_record("A0021", action_cd="X"), first_record("A0080")])
    assert staged.records["hcpcs_code"].to_list() == ["A0080"]
    assert rejects_of(staged)[0]["field"] == "action_cd"
    assert rejects_of(staged)[0]["value"] == "X"
    assert staged.rejects["rule"][0] == "an action code: A, B, C, D, F, N, P, R, S or T"


def test_unknown_pricing_indicator_rejects_record(tmp_path):
    staged = load_text_release(tmp_path, [first_record("A0021", price1="98"), first_record("A0080")])
    assert staged.records["hcpcs_code"].to_list() == ["A0080"]
    assert rejects_of(staged)[0]["field"] == "price1"


def test_continuation_without_first_record_rejected(tmp_path):
    staged = load_text_release(tmp_path, [continuation_record("A0080", "orphan"), first_record("A0021")])
    assert staged.records["hcpcs_code"].to_list() == ["A0021"]
    assert rejects_of(staged)[0]["line_number"] == 1
    assert staged.summary["rejected_lines"] == 1


def test_code_twice_rejects_both_lines(tmp_path):
    staged = load_text_release(tmp_path, [first_record("A0021"), first_record("A0080"), first_record("A0021", "Other")])
    assert staged.records["hcpcs_code"].to_list() == ["A0080"]
    assert [row["line_number"] for row in rejects_of(staged)] == [1, 3]
    assert staged.summary["rejected_lines"] == 2


def test_bad_code_pattern_rejected(tmp_path):
    staged = load_text_release(tmp_path, [first_record("A0021"), first_record("W1234"), first_record("a0080")])
    assert staged.records["hcpcs_code"].to_list() == ["A0021"]
    assert sorted(row["line_number"] for row in rejects_of(staged)) == [2, 2, 3, 3]


def test_every_failure_reported_in_one_pass(tmp_path):
    staged = load_text_release(tmp_path, [first_record("A0021", action_cd="X", cov="Q", add_dt="2020"),
                                          first_record("A0080")])
    assert sorted(row["field"] for row in rejects_of(staged)) == ["action_cd", "add_dt", "cov"]


def test_lines_reconcile_with_rejections(tmp_path):
    lines = ["***Disclaimers", "", first_record("A0021", "First part of a long description"),
             continuation_record("A0021", "second part"), first_record("A0080", action_cd="X"),
             continuation_record("A0080", "continued"), ""]
    staged = load_text_release(tmp_path, lines)
    summary = staged.summary
    assert summary["lines_read"] == 7
    assert summary["records_loaded"] == 1
    assert summary["continuation_lines"] == 1
    assert summary["header_lines"] == 3
    assert summary["rejected_lines"] == 2
    assert summary["lines_read"] == (summary["records_loaded"] + summary["continuation_lines"]
                                     + summary["header_lines"] + summary["rejected_lines"])


def test_all_records_rejected_stops_release(tmp_path):
    with pytest.raises(ReleaseFileError, match="every one of its 1 records was rejected") as error:
        load_text_release(tmp_path, [first_record("A0021", action_cd="X")])
    assert "line 1, action_cd 'X'" in str(error.value)


def test_workbook_renamed_column_stops_release(tmp_path):
    headers = list(layout.WORKBOOK_HEADERS)
    headers[2] = "RECORD ID"
    write_workbook(tmp_path / "2024-APR" / "HCPC2024_APR_ANWEB.xlsx", [workbook_row("A0021")], headers=headers)
    with pytest.raises(ReleaseFileError, match="HCPC2024_APR_ANWEB.xlsx, row 1: column 3 is headed 'RECORD ID'"):
        load_release(read_release(tmp_path / "2024-APR"), "run-1")


def test_workbook_below_eleven_disclaimer_rows_loads(tmp_path):
    disclaimers = ["Note regarding coverage and payment indicators"] + [""] * 10
    write_workbook(tmp_path / "2020-APR" / "anweb.xlsx", [workbook_row("A0021"), workbook_row("A0080")],
                   disclaimers=disclaimers)
    staged = load_release(read_release(tmp_path / "2020-APR"), "run-1")
    assert staged.records["source_line"].to_list() == [13, 14]
    assert staged.summary["header_lines"] == 12


def test_workbook_numeric_record_id_and_unpadded_modifier(tmp_path):
    rows = [workbook_row("J5", "Off-the-shelf orthotic", recid=7), workbook_row("A0021", recid=3)]
    rows[0][0] = "J5"
    write_workbook(tmp_path / "2020-OCT" / "anweb.xlsx", rows)
    staged = load_release(read_release(tmp_path / "2020-OCT"), "run-1")
    assert staged.records.select("hcpcs_code", "code_type", "record_id").rows() == [
        ("J5", "modifier", "7"), ("A0021", "procedure", "3")
    ]
    assert staged.rejects.is_empty()


def test_truncated_text_file_stops_release(tmp_path):
    path = write_text(tmp_path / "2024-annual" / TEXT_NAME, [first_record("A0021"), first_record("A0080")])
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ReleaseFileError, match="cut short"):
        load_release(read_release(tmp_path / "2024-annual"), "run-1")


def test_text_cut_inside_continuation_stops_release(tmp_path):
    path = write_text(tmp_path / "2024-annual" / TEXT_NAME,
                      [first_record("A0021", "First part"), continuation_record("A0021", "second part of the text")])
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ReleaseFileError, match="line 2 without a line break, so it was cut short"):
        load_release(read_release(tmp_path / "2024-annual"), "run-1")


def test_text_cut_at_line_boundary_caught_by_workbook(tmp_path):
    write_text(tmp_path / "2024-annual" / TEXT_NAME, [first_record("A0021"), first_record("A0080")][:1])
    write_workbook(tmp_path / "2024-annual" / "HCPC2024_JAN_ANWEB.xlsx", [workbook_row("A0021"), workbook_row("A0080")])
    with pytest.raises(ReleaseFileError, match="lists 1 codes where .* lists 2: 1 codes only in the workbook") as error:
        load_release(read_release(tmp_path / "2024-annual"), "run-1")
    assert "A0080" in str(error.value)


def test_bad_asc_group_nulls_field_only(tmp_path):
    line = first_record("C9488", cov="D")
    line = line[:230] + "20170401" + line[238:]
    staged = load_text_release(tmp_path, [line])
    assert staged.records["asc_payment_group_code"].to_list() == [None]
    assert [row["field"] for row in rejects_of(staged)] == ["asc_dt", "asc_grp"]
    assert {row["outcome"] for row in rejects_of(staged)} == {"field set to NULL"}


def test_zero_record_workbook_stops_release(tmp_path):
    write_workbook(tmp_path / "2024-APR" / "HCPC2024_APR_ANWEB.xlsx", [])
    with pytest.raises(ReleaseFileError, match="no record below it"):
        load_release(read_release(tmp_path / "2024-APR"), "run-1")


def test_zero_record_text_stops_release(tmp_path):
    write_text(tmp_path / "2024-annual" / TEXT_NAME, ["***Disclaimers", ""])
    with pytest.raises(ReleaseFileError, match="no HCPCS record"):
        load_release(read_release(tmp_path / "2024-annual"), "run-1")


def test_zip_with_only_readme_rejected(tmp_path):
    write_zip(tmp_path / "2024-APR-alpha-numeric-hcpcs-file.zip", {"HCPC2024_APR_README.txt": b"Read me"})
    with pytest.raises(ReleaseFileError, match="no ANWEB data file") as error:
        discover_releases(tmp_path)
    assert "HCPC2024_APR_README.txt" in str(error.value)


def test_sharp_code_count_drop_leaves_release_out(tmp_path):
    write_text(tmp_path / "2024-annual" / TEXT_NAME, [first_record(f"A{n:04d}") for n in range(10)])
    write_text(tmp_path / "2024-APR" / "HCPC2024_APR_ANWEB.txt", [first_record("A0000"), first_record("A0001")])
    staged = [load_release(release, "run-1") for release in discover_releases(tmp_path)]
    tables, problems = assemble(staged, max_code_drop=0.2)
    assert [problem.release_id for problem in problems] == ["2024-04"]
    assert isinstance(problems[0], ReleaseCountDropError)
    assert "HCPCS_MAX_CODE_DROP" in str(problems[0])
    assert tables.releases["release_id"].to_list() == ["2024-01"]
    assert tables.records["release_id"].unique().to_list() == ["2024-01"]


def test_empty_raw_folder_says_where_files_go(tmp_path):
    with pytest.raises(RawFolderError, match="contains no CMS release") as error:
        discover_releases(tmp_path)
    assert "HCPCS_RAW_DIR" in str(error.value)
    assert "Alpha-Numeric HCPCS File" in str(error.value)


def test_missing_raw_folder_says_where_files_go(tmp_path):
    with pytest.raises(RawFolderError, match="does not exist"):
        discover_releases(tmp_path / "missing")
