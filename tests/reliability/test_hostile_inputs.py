"""Hostile archives and names: each is rejected with a clear error or loaded safely.

Every test checks that nothing outside the raw and warehouse folders changed (a snapshot of
the rest of the sandbox before and after) and that the raw files kept their checksums.
"""

import os
import stat
import struct
import zipfile
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

import hcpcs.releases
from hcpcs import catalog
from hcpcs.errors import HcpcsError, RawFolderError, ReleaseFileError
from hcpcs.releases import discover_releases
from hcpcs.stage import load_release, read_staged, write_staged
from hcpcs.warehouse import build_warehouse
from tests.cms_files import first_record, write_text
from tests.reliability.support import (
    Sandbox,
    loaded_record_count,
    raw_checksums,
    record_outcome,
    tree_snapshot,
    warehouse_state,
    write_text_release,
)

CODES = ("A0021", "A0080", "G0503", "25")
ANWEB_TEXT = "".join(first_record(code) + "\r\n" for code in CODES).encode("cp1252")
HOSTILE_FOLDER = "2026-APR'; DROP TABLE x;--"
HOSTILE_FILE = "HCPC2026_'\"ANWEB.txt"


@contextmanager
def only_raw_and_warehouse_change(sandbox: Sandbox):
    """Fail if anything in the sandbox outside raw/ and warehouse/ changes, or any raw file does."""
    outside_before = tree_snapshot(sandbox.root, skip=(sandbox.raw, sandbox.warehouse_dir))
    raw_before = raw_checksums(sandbox.raw)
    yield
    assert tree_snapshot(sandbox.root, skip=(sandbox.raw, sandbox.warehouse_dir)) == outside_before
    sandbox.check_raw_unchanged(raw_before)


def write_zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    """Write a zip whose member names are kept exactly as given, unlike ZipFile.write."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            archive.writestr(info, data)
    return path


def set_claimed_size(path: Path, size: int) -> None:
    """Overwrite the uncompressed size of the zip's only member in both of its headers."""
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, size)
    struct.pack_into("<I", data, central + 24, size)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "member",
    [
        "../HCPC2026_APR_ANWEB.txt",
        "../../outside/HCPC2026_ANWEB.txt",
        "/tmp/HCPC2026_APR_ANWEB.txt",
        "C:\\HCPC\\HCPC2026_APR_ANWEB.txt",
        "C:HCPC2026_APR_ANWEB.txt",
        "docs/../../README.txt",
    ],
    ids=["parent", "parent-into-outside", "absolute", "windows-absolute", "windows-drive", "non-data-member"],
)
def test_zip_unsafe_member_path_rejected(sandbox: Sandbox, member: str):
    members = [(member, ANWEB_TEXT)]
    if "ANWEB" not in member:
        members.insert(0, ("HCPC2026_APR_ANWEB.txt", ANWEB_TEXT))
    write_zip(sandbox.raw / "2026-APR.zip", members)

    with only_raw_and_warehouse_change(sandbox):
        with pytest.raises(ReleaseFileError) as raised:
            discover_releases(sandbox.raw)

    message = str(raised.value)
    assert message.startswith("2026-APR.zip: zip member ")
    assert repr(member) in message
    assert "has an absolute path or '..' in it" in message
    assert "Download the zip again from CMS" in message


def test_zip_symlink_member_rejected(sandbox: Sandbox):
    link = zipfile.ZipInfo("HCPC2026_APR_ANWEB.txt")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    write_zip(sandbox.raw / "2026-APR.zip", [(link, b"../../outside/keep.txt")])

    with only_raw_and_warehouse_change(sandbox):
        with pytest.raises(ReleaseFileError, match=r"zip member 'HCPC2026_APR_ANWEB.txt' is a symbolic link"):
            discover_releases(sandbox.raw)


def test_zip_member_over_limit_rejected(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(hcpcs.releases, "MAX_MEMBER_BYTES", 1000)
    write_zip(sandbox.raw / "2026-APR.zip", [("HCPC2026_APR_ANWEB.txt", ANWEB_TEXT)])

    with only_raw_and_warehouse_change(sandbox):
        with pytest.raises(ReleaseFileError) as raised:
            discover_releases(sandbox.raw)
    assert f"expands to {len(ANWEB_TEXT)} bytes, more than the limit of 1000" in str(raised.value)


def test_zip_huge_claimed_size_rejected(sandbox: Sandbox):
    """A header that claims 4 GB is rejected before a byte is decompressed, at the real limit."""
    archive = write_zip(sandbox.raw / "2026-APR.zip", [("HCPC2026_APR_ANWEB.txt", ANWEB_TEXT)])
    set_claimed_size(archive, 0xFFFFFFF0)

    with only_raw_and_warehouse_change(sandbox):
        with pytest.raises(ReleaseFileError, match=r"expands to 4294967280 bytes, more than the limit of 268435456"):
            discover_releases(sandbox.raw)


def test_zip_member_inflating_past_claim_rejected(sandbox: Sandbox):
    """A header that claims 100 bytes for a member that inflates to 1 MB (a zip bomb in disguise)."""
    bomb = ANWEB_TEXT + b" " * 1_000_000
    archive = write_zip(sandbox.raw / "2026-APR.zip", [("HCPC2026_APR_ANWEB.txt", bomb)])
    set_claimed_size(archive, 100)

    with only_raw_and_warehouse_change(sandbox):
        releases = discover_releases(sandbox.raw)
        with pytest.raises(ReleaseFileError, match=r"2026-APR.zip"):
            load_release(releases[0], "hostile")


def test_zip_damaged_member_rejected(sandbox: Sandbox):
    archive = write_zip(sandbox.raw / "2026-APR.zip", [("HCPC2026_APR_ANWEB.txt", ANWEB_TEXT)])
    with zipfile.ZipFile(archive) as opened:
        info = opened.getinfo("HCPC2026_APR_ANWEB.txt")
    data = bytearray(archive.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF  # a byte inside the deflate stream
    archive.write_bytes(bytes(data))

    with only_raw_and_warehouse_change(sandbox):
        releases = discover_releases(sandbox.raw)
        with pytest.raises(ReleaseFileError, match=r"2026-APR.zip"):
            load_release(releases[0], "hostile")


def test_pipeline_unsafe_zip_keeps_warehouse(sandbox: Sandbox):
    """`python -m pipelines.build` stops at the unsafe zip and leaves the earlier warehouse as it was."""
    write_text_release(sandbox.raw, "2026-annual", dict.fromkeys(CODES, "Test procedure"))
    for release in discover_releases(sandbox.raw):
        write_staged(load_release(release, "hostile"), sandbox.staging)
    build_warehouse(read_staged(sandbox.staging), sandbox.warehouse)
    before = warehouse_state(sandbox.warehouse)
    write_zip(sandbox.raw / "2026-APR.zip", [("../../outside/HCPC2026_ANWEB.txt", ANWEB_TEXT)])

    with only_raw_and_warehouse_change(sandbox):
        completed = sandbox.run_build_module()

    assert completed.returncode == 2
    assert "error: 2026-APR.zip: zip member '../../outside/HCPC2026_ANWEB.txt' has an absolute path" in completed.stderr
    assert warehouse_state(sandbox.warehouse) == before


def test_pipeline_sql_in_names_loads(sandbox: Sandbox):
    """Quotes and SQL in folder and file names end up as plain text in the warehouse."""
    expected = write_text_release(sandbox.raw, HOSTILE_FOLDER, dict.fromkeys(CODES, "Test procedure"), HOSTILE_FILE)
    other_folder = '2026-OCT"; DROP TABLE dim_hcpcs_code;--'
    expected += write_text_release(sandbox.raw, other_folder, dict.fromkeys(CODES, "Changed procedure"))

    with only_raw_and_warehouse_change(sandbox):
        completed = sandbox.run_build_module()

    assert completed.returncode == 0, completed.stderr[-3000:]
    connection = duckdb.connect(str(sandbox.warehouse), read_only=True)
    try:
        tables = {row[0] for row in connection.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        source_files = connection.execute(
            "SELECT DISTINCT release_id, source_file FROM hcpcs_release_record ORDER BY release_id"
        ).fetchall()
    finally:
        connection.close()
    assert set(catalog.TABLES) <= tables
    assert "x" not in tables
    assert source_files == [
        ("2026-04", f"{HOSTILE_FOLDER}/{HOSTILE_FILE}"),
        ("2026-10", f"{other_folder}/HCPC2026_ANWEB.txt"),
    ]
    assert record_outcome("release and file named with quotes and SQL", expected,
                          loaded_record_count(sandbox.warehouse)) == 0


def test_warehouse_path_with_quotes_builds(sandbox: Sandbox):
    expected = write_text_release(sandbox.raw, "2026-APR", dict.fromkeys(CODES, "Test procedure"))
    for release in discover_releases(sandbox.raw):
        write_staged(load_release(release, "hostile"), sandbox.staging)
    warehouse = sandbox.warehouse_dir / "ware'house\"; DROP TABLE x;--.duckdb"

    with only_raw_and_warehouse_change(sandbox):
        build_warehouse(read_staged(sandbox.staging), warehouse)

    assert record_outcome("warehouse path with quotes", expected, loaded_record_count(warehouse)) == 0


def test_non_utf8_folder_name_handled(sandbox: Sandbox):
    write_text_release(sandbox.raw, "2026-annual", dict.fromkeys(CODES, "Test procedure"))
    bad_folder = os.fsdecode(b"2026-APR-\xff")
    write_text_release(sandbox.raw, bad_folder, dict.fromkeys(CODES, "Changed procedure"))

    with only_raw_and_warehouse_change(sandbox):
        try:
            for release in discover_releases(sandbox.raw):
                write_staged(load_release(release, "hostile"), sandbox.staging)
            build_warehouse(read_staged(sandbox.staging), sandbox.warehouse)
        except HcpcsError as error:
            assert "2026-APR-" in str(error)
            return
    assert loaded_record_count(sandbox.warehouse) == 2 * len(CODES)


def test_release_folder_and_zip_rejected(sandbox: Sandbox):
    write_text_release(sandbox.raw, "2026-APR", dict.fromkeys(CODES, "Test procedure"))
    write_zip(sandbox.raw / "2026-APR.zip", [("HCPC2026_APR_ANWEB.txt", ANWEB_TEXT)])

    with only_raw_and_warehouse_change(sandbox):
        with pytest.raises(RawFolderError, match=r"2026-APR and 2026-APR.zip are both release 2026-04"):
            discover_releases(sandbox.raw)


def test_symlink_outside_raw_read_only(sandbox: Sandbox, case_runner):
    """An ANWEB name linking to a file outside the raw folder is read, rejected, and left as it was."""
    (sandbox.raw / "2026-APR").mkdir()
    (sandbox.raw / "2026-APR" / "HCPC2026_APR_ANWEB.txt").symlink_to(sandbox.outside / "HCPC2026_ANWEB.txt")

    with only_raw_and_warehouse_change(sandbox):
        outcome = case_runner.run(sandbox.raw)

    assert outcome.kind == "rejected", outcome.detail
    assert outcome.detail.startswith("2026-APR/HCPC2026_APR_ANWEB.txt: no HCPCS record found in 1 lines")


def _make_fifo(path: Path) -> None:
    os.mkfifo(path)


SPECIAL_DATA_FILES = {
    "fifo": _make_fifo,
    "symlink-loop": lambda path: path.symlink_to(path.name),
    "device": lambda path: path.symlink_to("/dev/zero"),
}


@pytest.mark.parametrize("kind", SPECIAL_DATA_FILES)
def test_special_data_file_rejected_without_hang(sandbox: Sandbox, case_runner, kind: str):
    (sandbox.raw / "2026-APR").mkdir()
    SPECIAL_DATA_FILES[kind](sandbox.raw / "2026-APR" / "HCPC2026_APR_ANWEB.txt")

    with only_raw_and_warehouse_change(sandbox):
        outcome = case_runner.run(sandbox.raw, time_limit=10)

    assert outcome.kind == "rejected", outcome.detail
    assert outcome.detail.startswith("2026-APR: no ANWEB data file")


SPECIAL_RELEASE_ENTRIES = {
    "dangling-symlink": lambda path: path.symlink_to("/nonexistent/2026-APR"),
    "symlink-loop": lambda path: path.symlink_to(path.name),
    "fifo": _make_fifo,
    "fifo-named-zip": lambda path: os.mkfifo(path.with_suffix(".zip")),
}


@pytest.mark.parametrize("kind", SPECIAL_RELEASE_ENTRIES)
def test_special_raw_entry_rejected_without_hang(sandbox: Sandbox, case_runner, kind: str):
    SPECIAL_RELEASE_ENTRIES[kind](sandbox.raw / "2026-APR")

    with only_raw_and_warehouse_change(sandbox):
        outcome = case_runner.run(sandbox.raw, time_limit=5)

    assert outcome.kind == "rejected", f"{outcome.kind}: {outcome.detail}"
    assert "2026-APR" in outcome.detail


def test_folder_named_zip_loads_as_folder(sandbox: Sandbox):
    write_text(sandbox.raw / "2026-APR.zip" / "HCPC2026_APR_ANWEB.txt", [first_record(code) for code in CODES])

    with only_raw_and_warehouse_change(sandbox):
        [release] = discover_releases(sandbox.raw)
        staged = load_release(release, "hostile")

    assert release.release_id == "2026-04"
    assert staged.summary["records_loaded"] == len(CODES)
