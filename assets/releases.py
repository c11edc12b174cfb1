"""Per-release assets: the CMS files of one release, and its validated, normalized records."""

import dagster as dg

from assets.metadata import preview, table_metadata
from hcpcs import catalog
from hcpcs.releases import Release, discover_releases
from hcpcs.stage import load_release, read_staged, write_staged
from pipelines.resources import HcpcsSettings

hcpcs_release_partitions = dg.DynamicPartitionsDefinition(name="hcpcs_release")

# Bump when parsing or normalizing changes, so that staged releases are loaded again.
PIPELINE_VERSION = "1"


def _find_release(settings: HcpcsSettings, release_id: str) -> Release:
    for release in discover_releases(settings.raw_path):
        if release.release_id == release_id:
            return release
    raise dg.Failure(
        description=f"Release {release_id} is no longer in the raw folder {settings.raw_path}. "
        "Put its folder or zip back, or delete the partition in the Dagster UI."
    )


@dg.asset(
    partitions_def=hcpcs_release_partitions,
    group_name="raw_release_files",
    kinds={"file"},
    code_version=PIPELINE_VERSION,
    # Downloaded zips land in the raw folder; releases copied in by hand have no upstream run.
    deps=["cms_release_download"],
)
def hcpcs_release_files(context: dg.AssetExecutionContext, settings: HcpcsSettings) -> dg.MaterializeResult:
    """The CMS files of one release (folder or zip): ANWEB data in one or two formats and proc_notes."""
    release = _find_release(settings, context.partition_key)
    files = [release.display_name(name) for name in release.source_files]
    context.log.info("Release %s found in %s: %s", release.release_id, release.location, ", ".join(files))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(files),
            "release_id": release.release_id,
            "effective_date": release.effective_date.isoformat(),
            "issue": release.issue,
            "location": str(release.location),
            "source_files": files,
            "content_hash": release.content_hash(),
        },
        data_version=dg.DataVersion(release.content_hash()),
    )


@dg.asset(
    partitions_def=hcpcs_release_partitions,
    group_name="validated_records",
    kinds={"polars", "pandera", "parquet"},
    deps=[hcpcs_release_files],
    code_version=PIPELINE_VERSION,
    check_specs=[
        dg.AssetCheckSpec(
            "lines_reconciled",
            asset="validated_hcpcs_release",
            blocking=True,
            description="Lines read = records loaded + continuation lines + header lines + rejected lines.",
        ),
        dg.AssetCheckSpec(
            "no_rejected_records",
            asset="validated_hcpcs_release",
            description="Every record passed the CMS layout rules; warns when some were set aside.",
        ),
    ],
)
def validated_hcpcs_release(context: dg.AssetExecutionContext, settings: HcpcsSettings) -> dg.MaterializeResult:
    """One row per code of one release, validated against the CMS layout rules and normalized; bad records set aside."""
    release = _find_release(settings, context.partition_key)
    content_hash = release.content_hash()
    earlier = read_staged(settings.staging_path, [release.release_id])
    if earlier and earlier[0].summary.get("content_hash") == content_hash and earlier[0].summary.get(
        "pipeline_version"
    ) == PIPELINE_VERSION:
        staged = earlier[0]
        context.log.info("Release %s is unchanged since run %s; kept its staged records", release.release_id,
                         staged.summary["run_id"])
    else:
        staged = load_release(release, context.run.run_id)
        staged.summary["pipeline_version"] = PIPELINE_VERSION
        write_staged(staged, settings.staging_path)
        context.log.info(
            "Release %s: %d records loaded, %d rejected, from %s",
            release.release_id, staged.summary["records_loaded"], staged.summary["rejected_records"],
            staged.summary["primary_file"],
        )
    summary = staged.summary
    metadata = table_metadata(staged.records, catalog.RECORD_COLUMNS)
    metadata.update(
        {
            "release_id": summary["release_id"],
            "source_file": summary["primary_file"],
            "cross_check_file": summary["cross_check_file"] or "",
            "lines_read": summary["lines_read"],
            "header_lines": summary["header_lines"],
            "continuation_lines": summary["continuation_lines"],
            "rejected_records": summary["rejected_records"],
            "rejected_lines": summary["rejected_lines"],
            "nulled_fields": summary["nulled_fields"],
            "format_differences": summary["format_differences"],
            "loaded_by_run": summary["run_id"],
            "rejections": preview(staged.rejects, rows=20),
        }
    )
    return dg.MaterializeResult(
        metadata=metadata,
        data_version=dg.DataVersion(content_hash),
        check_results=[_reconciliation_result(summary), _rejection_result(staged.rejects)],
    )


def _reconciliation_result(summary: dict) -> dg.AssetCheckResult:
    accounted = (
        summary["records_loaded"] + summary["continuation_lines"] + summary["header_lines"] + summary["rejected_lines"]
    )
    return dg.AssetCheckResult(
        check_name="lines_reconciled",
        passed=accounted == summary["lines_read"],
        metadata={"lines_read": summary["lines_read"], "lines_accounted_for": accounted},
    )


def _rejection_result(rejects) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="no_rejected_records",
        passed=rejects.is_empty(),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failure_count": rejects.height, "sample": preview(rejects, rows=10)},
    )


