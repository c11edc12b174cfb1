"""Warehouse-wide tables, rebuilt in one new DuckDB file from every staged release and swapped in."""

import dagster as dg
import polars as pl

from assets.metadata import preview, table_metadata
from assets.releases import validated_hcpcs_release
from hcpcs import catalog
from hcpcs.checks import INVARIANTS, undecoded_values, warehouse_invariants
from hcpcs.stage import read_staged
from hcpcs.history import version_delta
from hcpcs.warehouse import assemble, column_comments, read_versions, write_lock, write_warehouse
from pipelines.resources import HcpcsSettings

WAREHOUSE_GROUP = "warehouse_tables"

# Asset key -> the WarehouseTables field with that table.
_TABLE_ASSETS = {
    "dim_hcpcs_release": "releases",
    "hcpcs_release_record": "records",
    "dim_hcpcs_code": "versions",
    "hcpcs_release_changes": "changes",
    "rejected_record": "rejects",
    "hcpcs_format_difference": "differences",
    "dim_processing_note": "notes",
}

# dim_hcpcs_code columns copied from CMS fields of hcpcs_release_record.
_VERSION_LINEAGE = dg.TableColumnLineage(
    deps_by_column={
        name: [dg.TableColumnDep(asset_key=dg.AssetKey("hcpcs_release_record"), column_name=name)]
        for name in catalog.RECORD_COLUMNS
        if name in catalog.VERSION_COLUMNS
    }
)

# hcpcs_release_record columns come from the same columns of the staged release records.
_RECORD_LINEAGE = dg.TableColumnLineage(
    deps_by_column={
        name: [dg.TableColumnDep(asset_key=dg.AssetKey("validated_hcpcs_release"), column_name=name)]
        for name in catalog.RECORD_COLUMNS
    }
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            name,
            description=catalog.TABLES[name],
            group_name=WAREHOUSE_GROUP,
            kinds={"duckdb", "table"},
            deps=[validated_hcpcs_release] if name in ("dim_hcpcs_release", "hcpcs_release_record", "rejected_record",
                                                       "hcpcs_format_difference", "dim_processing_note")
            else ["hcpcs_release_record"],
            skippable=False,
        )
        for name in _TABLE_ASSETS
    ],
    check_specs=[
        dg.AssetCheckSpec(name, asset=table, blocking=True, description=description)
        for name, (table, description, _) in INVARIANTS.items()
    ]
    + [
        dg.AssetCheckSpec(
            "coded_values_decoded",
            asset="dim_hcpcs_code",
            description="Every coded value of every version has a row in its lookup table (warns otherwise).",
        )
    ],
    name="hcpcs_warehouse",
)
def hcpcs_warehouse(context: dg.AssetExecutionContext, settings: HcpcsSettings):
    """Rebuild every warehouse table from the staged releases in a new DuckDB file and swap it in."""
    staged = read_staged(settings.staging_path)
    if not staged:
        raise dg.Failure(
            description=f"No staged release in {settings.staging_path}. Materialize validated_hcpcs_release "
            "for at least one release partition first."
        )
    tables, problems = assemble(staged, settings.max_code_drop)
    for problem in problems:
        context.log.error(str(problem))

    outcomes = warehouse_invariants(tables)
    for outcome in outcomes:
        yield dg.AssetCheckResult(
            asset_key=INVARIANTS[outcome.name][0],
            check_name=outcome.name,
            passed=outcome.passed,
            metadata={"failure_count": outcome.failures.height, "sample": preview(outcome.failures, rows=10)},
        )
    failed = [outcome.name for outcome in outcomes if not outcome.passed]
    if failed:
        raise dg.Failure(
            description=f"Warehouse checks failed: {', '.join(failed)}. The previous warehouse file was kept."
        )

    undecoded = undecoded_values(tables.versions, tables.notes)
    yield dg.AssetCheckResult(
        asset_key="dim_hcpcs_code",
        check_name="coded_values_decoded",
        passed=undecoded.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "failure_count": undecoded.height,
            "values": preview(undecoded.group_by("field", "value").len().sort("field", "value"), rows=30),
        },
    )

    with write_lock(settings.warehouse, settings.lock_timeout_seconds):
        delta = version_delta(read_versions(settings.warehouse), tables.versions)
        write_warehouse(tables, settings.warehouse)
    context.log.info("Wrote %s: %d code versions from %d releases", settings.warehouse, tables.versions.height,
                     tables.releases.height)

    for name, attribute in _TABLE_ASSETS.items():
        frame: pl.DataFrame = getattr(tables, attribute)
        metadata = table_metadata(frame, column_comments()[name])
        metadata["warehouse"] = str(settings.warehouse)
        if name == "dim_hcpcs_code":
            metadata["current_versions"] = int(frame["is_current"].sum())
            metadata.update(delta)
            metadata["dagster/column_lineage"] = _VERSION_LINEAGE
        if name == "hcpcs_release_record":
            metadata["dagster/column_lineage"] = _RECORD_LINEAGE
        if name == "dim_hcpcs_release":
            metadata["releases"] = frame["release_id"].to_list()
            metadata["releases_left_out"] = tables.excluded
        yield dg.MaterializeResult(asset_key=name, metadata=metadata)

    if problems:
        raise dg.Failure(
            description="Some releases were left out of the warehouse: " + " ".join(str(p) for p in problems)
        )
