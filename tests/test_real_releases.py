"""Tests on the real CMS releases: counts, line accounting, and the text/workbook cross-check."""

import re
import zipfile

import fastexcel
import polars as pl
import pytest

from hcpcs.releases import discover_releases

# Fields where a release's text file and workbook disagree, as CMS published them. The text
# file is the one loaded; these are CMS's own differences, not parsing errors.
CMS_FORMAT_DIFFERENCES = {
    # The 2016 and 2019 workbooks leave ACT EFF DT blank for 115 old codes (A0130, A0180, ...)
    # that carry a date in the text file.
    "2016-01": {("action_effective_date", 115)},
    # Three 2017 orthotics codes have other action effective dates in the workbook.
    "2017-01": {("action_effective_date", 3)},
    "2018-01": set(),
    "2019-01": {("action_effective_date", 115), ("type_of_service_codes", 2)},
    # The 2020 .xls workbook agrees with the text file field for field.
    "2020-01": set(),
}


def first_records_in_file(release) -> int:
    """Count record id 3 and 7 lines or rows straight from the file, independently of the readers."""
    data = release.read_bytes(release.primary_file)
    if release.primary_file.lower().endswith(".txt"):
        lines = data.decode("cp1252").split("\r\n")
        return sum(1 for line in lines if re.match(r"^(?:[A-Z][0-9]{4}|   [A-Z0-9]{2})[0-9]{5}[37]", line))
    frame = fastexcel.read_excel(data).load_sheet(0, header_row=None, dtypes="string").to_polars()
    return frame.filter(pl.col(frame.columns[2]).str.strip_chars().is_in(["3", "7"])).height


def test_codes_loaded_equal_first_records(real_build, shared_raw_dir):
    staged, _, _ = real_build
    expected = {release.release_id: first_records_in_file(release) for release in discover_releases(shared_raw_dir)}
    loaded = {item.release_id: item.summary["records_loaded"] for item in staged}
    assert loaded == expected
    assert loaded == {
        "2016-01": 6293, "2017-01": 6498, "2018-01": 6559, "2019-01": 6800,
        "2020-01": 7079, "2020-04": 7097, "2020-10": 7196, "2025-10": 8846,
    }


def test_every_line_accounted_for(real_build):
    staged, tables, _ = real_build
    for item in staged:
        s = item.summary
        assert s["lines_read"] == s["records_loaded"] + s["continuation_lines"] + s["header_lines"] + s["rejected_lines"], s
        assert s["rejected_lines"] == 0, s["release_id"]
    assert tables.releases["is_reconciled"].all()


def test_only_documented_cms_defects_flagged(real_build):
    _, tables, _ = real_build
    flagged = tables.rejects.select("release_id", "hcpcs_code", "field", "value", "outcome").rows()
    # The 2018 annual text file shifts the ASC date of five codes two columns left over the
    # missing group code YY (D20170401), so both fields load as NULL.
    assert flagged == [
        (release, code, field, value, "field set to NULL")
        for code, date_text in [("C9488", "170401"), ("C9745", "170701"), ("C9746", "170701"),
                                ("C9747", "170701"), ("C9748", "180101")]
        for release, field, value in [("2018-01", "asc_dt", date_text), ("2018-01", "asc_grp", "20")]
    ]


@pytest.mark.parametrize("release_id", sorted(CMS_FORMAT_DIFFERENCES))
def test_text_and_workbook_agree_but_for_cms_differences(real_build, release_id):
    _, tables, _ = real_build
    differences = tables.differences.filter(pl.col("release_id") == release_id)
    counts = {(row["field"], row["len"]) for row in differences.group_by("field").len().iter_rows(named=True)}
    assert counts == CMS_FORMAT_DIFFERENCES[release_id]


def test_workbook_blank_dates_are_the_cms_difference(real_build):
    _, tables, _ = real_build
    blanks = tables.differences.filter(
        (pl.col("field") == "action_effective_date") & pl.col("release_id").is_in(["2016-01", "2019-01"])
    )
    assert blanks["cross_check_value"].null_count() == blanks.height
    assert blanks["primary_value"].null_count() == 0


def test_known_2017_and_2019_differences(real_build):
    _, tables, _ = real_build
    rows = tables.differences.filter(
        (pl.col("release_id") == "2017-01") | (pl.col("field") == "type_of_service_codes")
    ).select("release_id", "hcpcs_code", "field", "primary_value", "cross_check_value").rows()
    assert rows == [
        ("2017-01", "L5638", "action_effective_date", "1996-01-01", "1986-01-01"),
        ("2017-01", "L5640", "action_effective_date", "1996-01-01", "1986-01-01"),
        ("2017-01", "L5643", "action_effective_date", "1986-01-01", "1988-01-01"),
        ("2019-01", "E0210", "type_of_service_codes", "A|L|P", "A|L|P|R"),
        ("2019-01", "E0776", "type_of_service_codes", "A|E|P", "A|E|P|R"),
    ]


def test_real_release_loads_from_zip(shared_raw_dir, tmp_path):
    folder = shared_raw_dir / "2017-annual"
    with zipfile.ZipFile(tmp_path / "2017-Alpha-Numeric-HCPCS-File.zip", "w") as archive:
        for name in ("HCPC17_CONTR_ANWEB.txt", "HCPC17_CONTR_ANWEB.xlsx", "proc_notes_2017.txt", "HCPC2017_README.txt"):
            archive.write(folder / name, name)
    from hcpcs.stage import load_release

    [release] = discover_releases(tmp_path)
    staged = load_release(release, "run-1")
    assert release.release_id == "2017-01"
    assert staged.summary["records_loaded"] == 6498
    assert staged.processing_notes.height > 200
