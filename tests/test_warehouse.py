"""Tests for the DuckDB warehouse: the S9326 code page, comments, idempotence and atomic replacement."""

import re
from datetime import date

import pytest

import hcpcs.warehouse as warehouse
from hcpcs.releases import discover_releases
from hcpcs.stage import load_release
from hcpcs.warehouse import build_warehouse
from tests.cms_files import first_record, write_text
from tests.conftest import SHARED_REFERENCE_DIR, dump_warehouse, require_shared

# Labels of the commercial code page -> hcpcs_code_detail column that gives the same value.
PAGE_FIELDS = {
    "HCPCS Code": "hcpcs_code",
    "Code Description": "long_description",
    "Short Description": "short_description",
    "Pricing Indicator Code #1": "pricing_indicator_codes[1]",
    "Pricing Indicator Code #1 Description": "pricing_indicator_1_description",
    "Multiple Pricing Indicator Code": "multiple_pricing_indicator_code",
    "Multiple Pricing Indicator Code Description": "multiple_pricing_indicator_description",
    "Coverage Code": "coverage_code",
    "Coverage Code Description": "coverage_description",
    "Processing Note Number": "processing_note_number",
    "Berenson-Eggers Type Of Service Code": "betos_code",
    "Berenson-Eggers Type Of Service Code Description": "betos_description",
    "Type Of Service Code #1": "type_of_service_codes[1]",
    "Type Of Service Code #1 Description": "type_of_service_1_description",
    "Anesthesia Base Unit Quantity": "CAST(anesthesia_base_units AS VARCHAR)",
    "Code Added Date": "strftime(code_added_date, '%Y%m%d')",
    "Action Effective Date": "strftime(action_effective_date, '%Y%m%d')",
    "Action Code": "action_code",
    "Action Code Description": "action_description",
    # The page shows Actual for a code in use, where the warehouse shows active.
    "Status": "CASE code_status WHEN 'active' THEN 'Actual' ELSE code_status END",
}


def code_page_values() -> dict[str, str]:
    page = require_shared(SHARED_REFERENCE_DIR / "code-page-S9326.txt").read_text()
    return dict(re.findall(r"^<i>([^<]+)</i>\t([^\t\n]*)", page, flags=re.MULTILINE))


def test_code_detail_gives_every_field_of_code_page(real_warehouse):
    page = code_page_values()
    assert set(page) - set(PAGE_FIELDS) == {"Last Update Date"}
    columns = ", ".join(f"{expression} AS \"{label}\"" for label, expression in PAGE_FIELDS.items())
    row = real_warehouse.sql(f"SELECT {columns} FROM hcpcs_code_detail WHERE hcpcs_code = 'S9326'").pl()
    assert row.height == 1
    for label, expression in PAGE_FIELDS.items():
        assert row[label][0] == page[label], label


def test_code_detail_last_update_is_newest_release(real_warehouse):
    # The page's "Last Update Date" is the year of the data it was built from (2026); the
    # warehouse gives the newest release that published the version.
    [(last_release, effective)] = real_warehouse.execute(
        "SELECT last_release_id, last_release_effective_date FROM hcpcs_code_detail WHERE hcpcs_code = 'S9326'"
    ).fetchall()
    assert last_release == "2025-10"
    assert effective == date(2025, 10, 1)


def test_current_s9326_as_on_code_page(real_warehouse):
    row = real_warehouse.sql("SELECT * FROM hcpcs_current WHERE hcpcs_code = 'S9326'").pl().row(0, named=True)
    assert row["pricing_indicator_codes"] == ["00"]
    assert row["multiple_pricing_indicator_code"] == "9"
    assert row["coverage_code"] == "I"
    assert row["processing_note_number"] == "0088"
    assert row["betos_code"] == "Z2"
    assert row["type_of_service_codes"] == ["9"]
    assert row["anesthesia_base_units"] == 0
    assert row["code_added_date"] == date(2002, 1, 1)
    assert row["action_effective_date"] == date(2002, 1, 1)
    assert row["action_code"] == "N"
    assert row["short_description"] == "Hit cont pain per diem"
    assert row["long_description"].startswith("Home infusion therapy, continuous (twenty-four hours or more)")


def test_warehouse_invariants_on_real_data(real_warehouse):
    assert real_warehouse.execute(
        "SELECT count(*) FROM (SELECT hcpcs_code FROM dim_hcpcs_code GROUP BY ALL HAVING count(*) FILTER (WHERE is_current) <> 1)"
    ).fetchone()[0] == 0
    assert real_warehouse.execute("SELECT count(*) FROM dim_hcpcs_code WHERE valid_from >= valid_to").fetchone()[0] == 0
    assert real_warehouse.execute(
        """SELECT count(*) FROM dim_hcpcs_code a JOIN dim_hcpcs_code b
           ON a.hcpcs_code = b.hcpcs_code AND a.version_number < b.version_number
           AND a.valid_from < b.valid_to AND b.valid_from < a.valid_to"""
    ).fetchone()[0] == 0
    assert real_warehouse.execute("SELECT typeof(valid_from), typeof(valid_to) FROM dim_hcpcs_code LIMIT 1").fetchone() == (
        "DATE", "DATE")


def test_as_of_macro_gives_code_on_date(real_warehouse):
    rows = real_warehouse.execute(
        "SELECT hcpcs_code, version_number, pricing_indicator_codes FROM hcpcs_as_of(DATE '2019-06-01') WHERE hcpcs_code = 'B4105'"
    ).fetchall()
    assert rows == [("B4105", 1, ["00"])]
    assert real_warehouse.execute("SELECT count(*) FROM hcpcs_as_of('2020-06-01') WHERE hcpcs_code = 'B4105'").fetchone() == (1,)
    assert real_warehouse.execute("SELECT count(*) FROM hcpcs_as_of('2018-06-01') WHERE hcpcs_code = 'G0503'").fetchone() == (0,)


def test_bridge_keeps_positions(real_warehouse):
    rows = real_warehouse.execute(
        """SELECT b.position, b.type_of_service_code FROM bridge_hcpcs_type_of_service b
           JOIN hcpcs_current c USING (hcpcs_code, version_number) WHERE hcpcs_code = 'E0210' ORDER BY position"""
    ).fetchall()
    listed = real_warehouse.execute("SELECT type_of_service_codes FROM hcpcs_current WHERE hcpcs_code = 'E0210'").fetchone()[0]
    assert [value for _, value in rows] == listed
    assert [position for position, _ in rows] == list(range(1, len(listed) + 1))


def test_every_relation_and_column_commented(real_warehouse):
    missing_tables = real_warehouse.execute(
        "SELECT table_name FROM duckdb_tables() WHERE comment IS NULL UNION ALL "
        "SELECT view_name FROM duckdb_views() WHERE NOT internal AND comment IS NULL"
    ).fetchall()
    assert missing_tables == []
    missing_columns = real_warehouse.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal AND comment IS NULL"
    ).fetchall()
    assert missing_columns == []
    macro_comment = real_warehouse.execute(
        "SELECT comment FROM duckdb_functions() WHERE function_name = 'hcpcs_as_of'"
    ).fetchone()[0]
    assert "hcpcs_as_of(d)" in macro_comment


def test_lookup_dimensions_loaded(real_warehouse):
    counts = dict(real_warehouse.execute(
        "SELECT table_name, estimated_size FROM duckdb_tables() WHERE table_name LIKE 'dim_%'"
    ).fetchall())
    for table in ("dim_pricing_indicator", "dim_multiple_pricing_indicator", "dim_coverage", "dim_betos",
                  "dim_type_of_service", "dim_action", "dim_lab_certification", "dim_record_id", "dim_processing_note"):
        assert counts[table] > 0, table


def test_same_releases_twice_give_identical_tables(real_build, tmp_path):
    staged, _, first_path = real_build
    build_warehouse(staged, tmp_path / "again.duckdb")
    assert dump_warehouse(tmp_path / "again.duckdb") == dump_warehouse(first_path)


def fixture_staged(tmp_path):
    write_text(tmp_path / "raw" / "2024-annual" / "HCPC_ANWEB.txt", [first_record("A0021"), first_record("A1")])
    return [load_release(release, "run-1") for release in discover_releases(tmp_path / "raw")]


def test_failed_build_keeps_previous_warehouse(tmp_path, monkeypatch):
    staged = fixture_staged(tmp_path)
    path = tmp_path / "hcpcs.duckdb"
    build_warehouse(staged, path)
    before = dump_warehouse(path)

    def broken(connection, tables):
        connection.execute("CREATE TABLE half_written (x INTEGER)")
        raise RuntimeError("disk full")

    monkeypatch.setattr(warehouse, "_create_tables", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_warehouse(staged, path)
    assert dump_warehouse(path) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".hcpcs.duckdb")] == []


def test_lock_times_out_with_clear_message(tmp_path):
    path = tmp_path / "hcpcs.duckdb"
    with warehouse.write_lock(path):
        with pytest.raises(warehouse.WarehouseLockedError, match="Another run is writing"):
            with warehouse.write_lock(path, timeout_seconds=0.3):
                pass
