"""Tests for hcpcs.releases: finding releases and telling which release a folder or zip is."""

from datetime import date

import pytest

from hcpcs.errors import RawFolderError, ReleaseFileError
from hcpcs.releases import discover_releases, read_release
from tests.cms_files import first_record, write_text, write_workbook, workbook_row, write_zip

RECORD = (first_record("A0021") + "\r\n").encode()


@pytest.mark.parametrize(
    ("folder", "file_name", "release_id", "effective"),
    [
        ("2016-annual", "HCPC2016_CONTR_ANWEB.txt", "2016-01", date(2016, 1, 1)),
        ("2017-annual", "HCPC17_CONTR_ANWEB.txt", "2017-01", date(2017, 1, 1)),
        ("2020-APR", "anweb.txt", "2020-04", date(2020, 4, 1)),
        ("downloads", "HCPC2025_OCT_ANWEB.txt", "2025-10", date(2025, 10, 1)),
        ("2026-JUL", "HCPC2026_JUL_ANWEB_v2.txt", "2026-07-v2", date(2026, 7, 1)),
        ("2026-OCT-v3", "HCPC2026_OCT_ANWEB.txt", "2026-10-v3", date(2026, 10, 1)),
        ("2020-april", "HCPC2020_APRIL_ANWEB_w_disclaimer_v5.txt", "2020-04-v5", date(2020, 4, 1)),
    ],
    ids=["annual", "two-digit-year", "renamed-file", "year-from-file", "reissue-in-file", "reissue-in-folder",
         "month-name"],
)
def test_release_identified_from_names(tmp_path, folder, file_name, release_id, effective):
    (tmp_path / folder).mkdir()
    (tmp_path / folder / file_name).write_bytes(RECORD)
    release = read_release(tmp_path / folder)
    assert release.release_id == release_id
    assert release.effective_date == effective


def test_text_preferred_workbook_cross_checked(tmp_path):
    write_text(tmp_path / "2019-annual" / "HCPC2019_CONTR_ANWEB.txt", [first_record("A0021")])
    write_workbook(tmp_path / "2019-annual" / "HCPC2019_CONTR_ANWEB.xlsx", [workbook_row("A0021")])
    (tmp_path / "2019-annual" / "proc_notes_2019.txt").write_text("PROCESSING NOTES\r\n")
    release = read_release(tmp_path / "2019-annual")
    assert release.primary_file == "HCPC2019_CONTR_ANWEB.txt"
    assert release.cross_check_file == "HCPC2019_CONTR_ANWEB.xlsx"
    assert release.processing_notes_file == "proc_notes_2019.txt"


def test_corrections_subfolder_ignored(tmp_path):
    write_text(tmp_path / "2018-annual" / "HCPC2018_CONTR_ANWEB_disc.txt", [first_record("A0021")])
    write_text(tmp_path / "2018-annual" / "corrections" / "V1_HCPC2018_Corrections_ANWEB.prn", ["x"])
    assert read_release(tmp_path / "2018-annual").source_files == ("HCPC2018_CONTR_ANWEB_disc.txt",)


def test_zip_release_read_in_place(tmp_path):
    write_zip(tmp_path / "2026-APR-alpha-numeric-hcpcs-file.zip",
              {"HCPC2026_APR_ANWEB.txt": RECORD, "HCPC2026_APR_README.txt": b"readme"})
    [release] = discover_releases(tmp_path)
    assert release.release_id == "2026-04"
    assert release.read_bytes(release.primary_file) == RECORD
    assert len(release.content_hash()) == 64


def test_zip_with_parent_path_rejected(tmp_path):
    write_zip(tmp_path / "2026-APR.zip", {"../HCPC2026_APR_ANWEB.txt": RECORD})
    with pytest.raises(ReleaseFileError, match="absolute path or '..'"):
        discover_releases(tmp_path)


def test_damaged_zip_rejected(tmp_path):
    (tmp_path / "2026-APR.zip").write_bytes(b"PK\x03\x04broken")
    with pytest.raises(ReleaseFileError, match="not a readable zip"):
        discover_releases(tmp_path)


def test_two_text_files_in_one_folder_rejected(tmp_path):
    write_text(tmp_path / "2026-OCT" / "HCPC2026_OCT_ANWEB.txt", [first_record("A0021")])
    write_text(tmp_path / "2026-OCT" / "HCPC2026_OCT_ANWEB_v2.txt", [first_record("A0021")])
    with pytest.raises(ReleaseFileError, match="folder of its own"):
        discover_releases(tmp_path)


def test_same_release_twice_rejected(tmp_path):
    write_text(tmp_path / "2026-APR" / "HCPC2026_APR_ANWEB.txt", [first_record("A0021")])
    write_zip(tmp_path / "2026-APR-alpha-numeric-hcpcs-file.zip", {"HCPC2026_APR_ANWEB.txt": RECORD})
    with pytest.raises(RawFolderError, match="are both release 2026-04"):
        discover_releases(tmp_path)


def test_loose_file_in_raw_folder_rejected(tmp_path):
    (tmp_path / "HCPC2026_APR_ANWEB.txt").write_bytes(RECORD)
    with pytest.raises(RawFolderError, match="loose files"):
        discover_releases(tmp_path)


def test_releases_sorted_oldest_first(tmp_path):
    for folder in ("2020-OCT", "2016-annual", "2020-APR"):
        write_text(tmp_path / folder / "x_ANWEB.txt", [first_record("A0021")])
    (tmp_path / "README.md").write_text("raw folder")
    assert [release.release_id for release in discover_releases(tmp_path)] == ["2016-01", "2020-04", "2020-10"]


def test_real_releases_identified(shared_raw_dir):
    releases = discover_releases(shared_raw_dir)
    assert [(r.release_id, r.primary_file, r.cross_check_file) for r in releases] == [
        ("2016-01", "HCPC2016_CONTR_ANWEB.txt", "HCPC2016_CONTR_ANWEB.xlsx"),
        ("2017-01", "HCPC17_CONTR_ANWEB.txt", "HCPC17_CONTR_ANWEB.xlsx"),
        ("2018-01", "HCPC2018_CONTR_ANWEB_disc.txt", "HCPC2018_CONTR_ANWEB_disc.xlsx"),
        ("2019-01", "HCPC2019_CONTR_ANWEB.txt", "HCPC2019_CONTR_ANWEB.xlsx"),
        ("2020-01", "HCPC2020_ANWEB_w_disclaimer.txt", "HCPC2020_ANWEB_w_disclaimer.xls"),
        ("2020-04", "anweb.xlsx", None),
        ("2020-10", "anweb.xlsx", None),
        ("2025-10", "HCPC2025_OCT_ANWEB.xlsx", None),
    ]
