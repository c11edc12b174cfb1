"""Build the DuckDB warehouse from staged releases and swap it in atomically.

Every build writes a complete new DuckDB file next to the warehouse and renames it over the
old one only when it is finished. Analysts with the old file open keep reading the old
state until they reconnect, a failed build leaves the old file untouched, and one lock file
lets only one build write at a time.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from hcpcs import catalog
from hcpcs.errors import HcpcsError, ReleaseCountDropError
from hcpcs.locking import WarehouseLockedError, file_lock  # noqa: F401 - WarehouseLockedError is part of this API
from hcpcs.history import (
    build_code_versions,
    build_release_changes,
    latest_issues,
    release_record_table,
    release_statements,
)
from hcpcs.lookups import load_code_table
from hcpcs.stage import StagedRelease
from schemas.records import ReleaseRecord
from schemas.warehouse import CodeVersion, RejectedRecord, Release, ReleaseChange

DEFAULT_MAX_CODE_DROP = 0.2
DEFAULT_LOCK_TIMEOUT_SECONDS = 600.0


@dataclass
class WarehouseTables:
    """Every table of the warehouse as a polars DataFrame, before it is written."""

    releases: pl.DataFrame
    records: pl.DataFrame
    versions: pl.DataFrame
    changes: pl.DataFrame
    rejects: pl.DataFrame
    differences: pl.DataFrame
    notes: pl.DataFrame
    excluded: list[str] = field(default_factory=list)


def release_frame(staged: list[StagedRelease]) -> pl.DataFrame:
    columns = list(catalog.RELEASE_COLUMNS)
    rows = []
    for item in staged:
        summary = dict(item.summary)
        summary["source_files"] = None
        rows.append({name: summary.get(name) for name in columns})
    frame = pl.DataFrame(rows, schema_overrides={"effective_date": pl.String}, infer_schema_length=None)
    frame = frame.with_columns(pl.col("effective_date").str.to_date())
    latest = latest_issues(frame)["release_id"]
    return frame.with_columns(
        is_latest_issue=pl.col("release_id").is_in(latest.implode()),
        is_reconciled=pl.col("lines_read")
        == pl.col("records_loaded") + pl.col("continuation_lines") + pl.col("header_lines") + pl.col("rejected_lines"),
    ).select(columns)


def check_code_counts(releases: pl.DataFrame, max_drop: float) -> list[ReleaseCountDropError]:
    """Flag each latest issue that lists more than `max_drop` fewer codes than the release before it."""
    ordered = releases.filter("is_latest_issue").sort("effective_date")
    problems = []
    previous = None
    for row in ordered.iter_rows(named=True):
        if previous is not None and row["records_loaded"] < (1 - max_drop) * previous["records_loaded"]:
            problems.append(
                ReleaseCountDropError(
                    row["release_id"],
                    f"{row['primary_file']}: release {row['release_id']} lists {row['records_loaded']} codes, "
                    f"{previous['records_loaded'] - row['records_loaded']} fewer than the "
                    f"{previous['records_loaded']} of release {previous['release_id']} (more than "
                    f"{max_drop:.0%} fewer). It was not loaded. Check that the file is complete, download it "
                    "again from CMS, or raise HCPCS_MAX_CODE_DROP if CMS really removed that many codes."
                )
            )
            continue
        previous = row
    return problems


def assemble(
    staged: list[StagedRelease], max_code_drop: float = DEFAULT_MAX_CODE_DROP
) -> tuple[WarehouseTables, list[ReleaseCountDropError]]:
    """Derive every warehouse table from the staged releases, leaving out releases that fail the count check."""
    if not staged:
        raise HcpcsError("No staged release to build the warehouse from. Load at least one release first.")
    releases = release_frame(staged)
    problems = check_code_counts(releases, max_code_drop)
    excluded = [problem.release_id for problem in problems]
    kept = [item for item in staged if item.release_id not in excluded]
    releases = release_frame(kept) if kept else releases.clear()

    records = pl.concat([item.records for item in kept]) if kept else pl.DataFrame()
    statements = release_statements(records, releases)
    notes = _processing_notes(kept)
    tables = WarehouseTables(
        releases=releases,
        records=release_record_table(records, statements),
        versions=build_code_versions(statements),
        changes=build_release_changes(statements),
        rejects=pl.concat([item.rejects for item in kept]).select(list(catalog.REJECTED_COLUMNS))
        .sort("release_id", "line_number", "field"),
        differences=pl.concat(
            [item.format_differences.with_columns(release_id=pl.lit(item.release_id)) for item in kept]
        ).select(list(catalog.DIFFERENCE_COLUMNS)),
        notes=notes,
        excluded=excluded,
    )
    validate_tables(tables)
    return tables, problems


def validate_tables(tables: WarehouseTables) -> None:
    """Check every table against its pandera model; a failure here is a bug, so it raises."""
    for model, frame in (
        (Release, tables.releases),
        (ReleaseRecord, tables.records),
        (CodeVersion, tables.versions),
        (RejectedRecord, tables.rejects),
        (ReleaseChange, tables.changes),
    ):
        if not frame.is_empty():
            model.validate(frame, lazy=True)


def _processing_notes(staged: list[StagedRelease]) -> pl.DataFrame:
    frames = [
        item.processing_notes.with_columns(
            release_id=pl.lit(item.release_id), effective_date=pl.lit(item.summary["effective_date"])
        )
        for item in staged
        if not item.processing_notes.is_empty()
    ]
    if not frames:
        return pl.DataFrame(schema={name: pl.String for name in catalog.NOTE_COLUMNS} | {"line_number": pl.Int64})
    return (
        pl.concat(frames)
        .sort("processing_note_number", "effective_date")
        .group_by("processing_note_number", maintain_order=True)
        .last()
        .select(list(catalog.NOTE_COLUMNS))
    )


def write_lock(warehouse_path: Path, timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS):
    """Hold the warehouse's write lock, waiting up to `timeout_seconds` for another build to finish."""
    lock_path = warehouse_path.with_name(warehouse_path.name + ".lock")
    return file_lock(lock_path, timeout_seconds, str(warehouse_path))


def write_warehouse(tables: WarehouseTables, warehouse_path: Path) -> None:
    """Write all tables into a new DuckDB file, then rename it over `warehouse_path` in one step.

    The caller holds the write lock (`write_lock`), so files of earlier builds that were
    killed before their rename belong to no running build and are removed first.
    """
    warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in warehouse_path.parent.glob(f".{warehouse_path.name}.building-*"):
        leftover.unlink(missing_ok=True)
    building = warehouse_path.with_name(f".{warehouse_path.name}.building-{os.getpid()}")
    try:
        connection = duckdb.connect(str(building))
        try:
            _create_tables(connection, tables)
            connection.execute("CHECKPOINT")
        finally:
            connection.close()
        # Make the new file durable before it replaces the old one, so a crash never leaves
        # the warehouse path pointing at a half-written file.
        with open(building, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(building, warehouse_path)
        directory = os.open(warehouse_path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        building.unlink(missing_ok=True)
        building.with_name(building.name + ".wal").unlink(missing_ok=True)


def read_versions(warehouse_path: Path) -> pl.DataFrame | None:
    """Read dim_hcpcs_code from the current warehouse file, or None when there is none yet."""
    if not warehouse_path.exists():
        return None
    connection = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        return connection.sql("SELECT hcpcs_code, valid_from, valid_to, first_release_id FROM dim_hcpcs_code").pl()
    except duckdb.CatalogException:
        return None
    finally:
        connection.close()


def _load(connection: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    connection.register("_incoming", frame.to_arrow())
    try:
        connection.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _incoming')
    finally:
        connection.unregister("_incoming")


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _create_tables(connection: duckdb.DuckDBPyConnection, tables: WarehouseTables) -> None:
    _load(connection, "dim_hcpcs_release", tables.releases)
    _load(connection, "hcpcs_release_record", tables.records)
    _load(connection, "dim_hcpcs_code", tables.versions)
    _load(connection, "hcpcs_release_changes", tables.changes)
    _load(connection, "rejected_record", tables.rejects)
    _load(connection, "hcpcs_format_difference", tables.differences)
    _load(connection, "dim_processing_note", tables.notes)
    for table, (code_table, _) in catalog.LOOKUP_TABLES.items():
        _load(connection, table, load_code_table(code_table))
    for table, (list_column, value_column, _) in catalog.BRIDGE_TABLES.items():
        bridge = (
            tables.versions.select("hcpcs_code", "version_number", list_column)
            .explode(list_column)
            .drop_nulls(list_column)
            .with_columns(position=pl.int_range(1, pl.len() + 1).over("hcpcs_code", "version_number").cast(pl.Int32))
            .select("hcpcs_code", "version_number", "position", pl.col(list_column).alias(value_column))
        )
        _load(connection, table, bridge)

    connection.execute(
        "ALTER TABLE dim_hcpcs_code ADD PRIMARY KEY (hcpcs_code, version_number)"
    )
    connection.execute(
        "CREATE VIEW hcpcs_current AS SELECT * FROM dim_hcpcs_code WHERE is_current"
    )
    connection.execute(
        "CREATE MACRO hcpcs_as_of(d) AS TABLE "
        "SELECT * FROM dim_hcpcs_code WHERE valid_from <= CAST(d AS DATE) AND CAST(d AS DATE) < valid_to"
    )
    connection.execute(_code_detail_sql())
    _write_comments(connection)


def _code_detail_sql() -> str:
    """SQL of hcpcs_code_detail: the current version with every coded value decoded."""
    decoded_lists = []
    joins = []
    for table, (_, value_column, lookup) in catalog.BRIDGE_TABLES.items():
        if lookup is None:
            continue
        alias = table.removeprefix("bridge_hcpcs_")
        decoded_lists.append(f"{alias}.descriptions AS {alias}_descriptions")
        joins.append(
            f"LEFT JOIN (SELECT b.hcpcs_code, b.version_number, "
            f"list(l.description ORDER BY b.position) AS descriptions "
            f"FROM {table} b LEFT JOIN {lookup} l ON l.code = b.{value_column} "
            f"GROUP BY b.hcpcs_code, b.version_number) {alias} "
            f"ON {alias}.hcpcs_code = c.hcpcs_code AND {alias}.version_number = c.version_number"
        )
    return f"""
CREATE VIEW hcpcs_code_detail AS
SELECT
    c.*,
    rid.description AS record_id_description,
    pricing_indicator.descriptions[1] AS pricing_indicator_1_description,
    mpi.description AS multiple_pricing_indicator_description,
    cov.description AS coverage_description,
    asc_group.description AS asc_payment_group_description,
    mog.description AS mog_payment_group_description,
    mog_pi.description AS mog_payment_policy_indicator_description,
    note.note_text AS processing_note_text,
    betos.description AS betos_description,
    type_of_service.descriptions[1] AS type_of_service_1_description,
    act.description AS action_description,
    CASE WHEN c.termination_date IS NULL OR c.termination_date >= current_date THEN 'active' ELSE 'terminated' END
        AS code_status,
    last_release.effective_date AS last_release_effective_date,
    {", ".join(decoded_lists)}
FROM hcpcs_current c
LEFT JOIN dim_record_id rid ON rid.code = c.record_id
LEFT JOIN dim_multiple_pricing_indicator mpi ON mpi.code = c.multiple_pricing_indicator_code
LEFT JOIN dim_coverage cov ON cov.code = c.coverage_code
LEFT JOIN dim_asc_payment_group asc_group ON asc_group.code = c.asc_payment_group_code
LEFT JOIN dim_mog_payment_group mog ON mog.code = c.mog_payment_group_code
LEFT JOIN dim_mog_payment_policy_indicator mog_pi ON mog_pi.code = c.mog_payment_policy_indicator
LEFT JOIN dim_processing_note note ON note.processing_note_number = c.processing_note_number
LEFT JOIN dim_betos betos ON betos.code = c.betos_code
LEFT JOIN dim_action act ON act.code = c.action_code
LEFT JOIN dim_hcpcs_release last_release ON last_release.release_id = c.last_release_id
{chr(10).join(joins)}
"""


DETAIL_COLUMNS: dict[str, str] = {
    "record_id_description": "Meaning of record_id (dim_record_id).",
    "pricing_indicator_1_description": "Meaning of the first pricing indicator (dim_pricing_indicator).",
    "multiple_pricing_indicator_description": "Meaning of multiple_pricing_indicator_code.",
    "coverage_description": "Meaning of coverage_code.",
    "asc_payment_group_description": "Meaning of asc_payment_group_code.",
    "mog_payment_group_description": "Meaning of mog_payment_group_code.",
    "mog_payment_policy_indicator_description": "Meaning of mog_payment_policy_indicator.",
    "processing_note_text": "Text of the processing note (dim_processing_note).",
    "betos_description": "Meaning of betos_code.",
    "type_of_service_1_description": "Meaning of the first type of service code.",
    "action_description": "Meaning of action_code.",
    "code_status": "active, or terminated when termination_date is before today's date.",
    "last_release_effective_date": "Effective date of the latest release that published this version.",
    "pricing_indicator_descriptions": "Meanings of pricing_indicator_codes, in the same order.",
    "lab_certification_descriptions": "Meanings of lab_certification_codes, in the same order.",
    "type_of_service_descriptions": "Meanings of type_of_service_codes, in the same order.",
}


def column_comments() -> dict[str, dict[str, str]]:
    """Return the COMMENT text of every column of every table and view, by relation name."""
    comments: dict[str, dict[str, str]] = {
        "dim_hcpcs_release": catalog.RELEASE_COLUMNS,
        "hcpcs_release_record": catalog.RECORD_COLUMNS,
        "dim_hcpcs_code": catalog.VERSION_COLUMNS,
        "hcpcs_release_changes": catalog.CHANGE_COLUMNS,
        "rejected_record": catalog.REJECTED_COLUMNS,
        "hcpcs_format_difference": catalog.DIFFERENCE_COLUMNS,
        "dim_processing_note": catalog.NOTE_COLUMNS,
        "hcpcs_current": catalog.VERSION_COLUMNS,
        "hcpcs_code_detail": catalog.VERSION_COLUMNS | DETAIL_COLUMNS,
    }
    for table in catalog.LOOKUP_TABLES:
        comments[table] = catalog.LOOKUP_COLUMNS
    for table, (list_column, value_column, _) in catalog.BRIDGE_TABLES.items():
        comments[table] = catalog.BRIDGE_COLUMNS | {value_column: f"One value of {list_column}."}
    return comments


def _write_comments(connection: duckdb.DuckDBPyConnection) -> None:
    for table, text in catalog.TABLES.items():
        connection.execute(f"COMMENT ON TABLE {table} IS '{_quote(text)}'")
    for view, text in catalog.VIEWS.items():
        connection.execute(f"COMMENT ON VIEW {view} IS '{_quote(text)}'")
    for macro, text in catalog.MACROS.items():
        connection.execute(f"COMMENT ON MACRO TABLE {macro} IS '{_quote(text)}'")
    for relation, columns in column_comments().items():
        for column, text in columns.items():
            connection.execute(f"COMMENT ON COLUMN {relation}.{column} IS '{_quote(text)}'")


def build_warehouse(
    staged: list[StagedRelease],
    warehouse_path: Path,
    max_code_drop: float = DEFAULT_MAX_CODE_DROP,
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
) -> tuple[WarehouseTables, list[ReleaseCountDropError]]:
    """Assemble the tables from staged releases and replace the warehouse file with them."""
    tables, problems = assemble(staged, max_code_drop)
    with write_lock(warehouse_path, lock_timeout_seconds):
        write_warehouse(tables, warehouse_path)
    return tables, problems
