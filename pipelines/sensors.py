"""Sensors that load new or changed releases from the raw folder, then rebuild the warehouse.

`hcpcs_raw_folder_sensor` hashes every release in the raw folder and requests one
`hcpcs_release_job` run per release whose content hash is new, adding its partition first.
`hcpcs_warehouse_rebuild_sensor` then requests one `hcpcs_warehouse_job` run once release
runs have succeeded and none is still queued or running.

Both sensors target their jobs by name, because the jobs are defined in pipelines/definitions.py,
which imports this module. Definitions fails to load if a name has no job.
"""

import json
import zipfile

import dagster as dg

from assets.releases import hcpcs_release_partitions
from hcpcs.errors import RawFolderError, ReleaseFileError
from hcpcs.releases import discover_releases
from pipelines.resources import HcpcsSettings

RELEASE_JOB_NAME = "hcpcs_release_job"
WAREHOUSE_JOB_NAME = "hcpcs_warehouse_job"
CONTENT_HASH_TAG = "hcpcs/content_hash"

# Hashing reads every release file, a few MB per release, so the folder is not read more often.
RAW_FOLDER_INTERVAL_SECONDS = 120
WAREHOUSE_INTERVAL_SECONDS = 60

# Run-status events read per tick. The cursor moves on, so a longer backlog is read over several ticks.
RUN_EVENTS_PER_TICK = 1000

_RUNNING_STATUSES = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


@dg.sensor(job_name=RELEASE_JOB_NAME, minimum_interval_seconds=RAW_FOLDER_INTERVAL_SECONDS)
def hcpcs_raw_folder_sensor(context: dg.SensorEvaluationContext, settings: HcpcsSettings):
    """Request one release run for each release in the raw folder whose content hash is new or changed.

    The cursor is a JSON object of release id to content hash, as of the last tick.
    """
    try:
        hashes = {release.release_id: release.content_hash() for release in discover_releases(settings.raw_path)}
    except (RawFolderError, ReleaseFileError) as error:
        return dg.SkipReason(str(error))
    except (zipfile.BadZipFile, OSError) as error:
        # A zip still being copied in, or a file moved away during the tick, fails while it is read.
        return dg.SkipReason(
            f"A release in the raw folder {settings.raw_path} cannot be read ({error}). It is read again on the next tick."
        )

    seen = _read_hash_cursor(context)
    changed = [release_id for release_id, content_hash in hashes.items() if seen.get(release_id) != content_hash]
    cursor = json.dumps(hashes, sort_keys=True)
    if not changed:
        return dg.SensorResult(skip_reason=f"No new or changed release among {len(hashes)}.", cursor=cursor)

    known = set(context.instance.get_dynamic_partitions(hcpcs_release_partitions.name))
    new_partitions = [release_id for release_id in changed if release_id not in known]
    partition_requests = []
    if new_partitions:
        partition_requests.append(hcpcs_release_partitions.build_add_request(new_partitions))

    # NOTE: Dagster launches each run key once per sensor. So when a file changes back to content it
    # had before, Dagster skips the run, and that partition has to be run by hand in the UI.
    run_requests = [
        dg.RunRequest(
            run_key=f"{release_id}:{hashes[release_id]}",
            partition_key=release_id,
            tags={CONTENT_HASH_TAG: hashes[release_id]},
        )
        for release_id in changed
    ]
    context.log.info("New or changed releases: %s", ", ".join(changed))
    return dg.SensorResult(run_requests=run_requests, dynamic_partitions_requests=partition_requests, cursor=cursor)


def _read_hash_cursor(context: dg.SensorEvaluationContext) -> dict[str, str]:
    if not context.cursor:
        return {}
    try:
        seen = json.loads(context.cursor)
    except json.JSONDecodeError:
        seen = None
    if not isinstance(seen, dict):
        # Starting over only costs one run per release, and an unchanged release keeps its staged data.
        context.log.warning("Cursor %r is not a JSON object of release id to hash, so every release is treated as new",
                            context.cursor[:200])
        return {}
    return seen


@dg.sensor(job_name=WAREHOUSE_JOB_NAME, minimum_interval_seconds=WAREHOUSE_INTERVAL_SECONDS)
def hcpcs_warehouse_rebuild_sensor(context: dg.SensorEvaluationContext):
    """Request one warehouse rebuild after release runs succeed, once no release run is queued or running.

    Release runs that succeed close together share one rebuild. The cursor is the storage id of
    the last run-status event read.
    """
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(event_type=dg.DagsterEventType.RUN_SUCCESS, after_storage_id=after),
        limit=RUN_EVENTS_PER_TICK,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("No run has succeeded since the last tick.")

    cursor = str(records[-1].storage_id)
    succeeded = [record.event_log_entry.run_id for record in records if record.event_log_entry.job_name == RELEASE_JOB_NAME]
    if not succeeded:
        return dg.SensorResult(skip_reason=f"No {RELEASE_JOB_NAME} run has succeeded since the last tick.",
                               cursor=cursor)

    running = context.instance.get_runs_count(dg.RunsFilter(job_name=RELEASE_JOB_NAME, statuses=_RUNNING_STATUSES))
    if running:
        # The cursor stays where it was, so these successes are read again on the next tick.
        return dg.SkipReason(
            f"{len(succeeded)} release runs succeeded, but {running} are still queued or running. "
            "The warehouse is rebuilt once they finish."
        )

    context.log.info("Rebuilding the warehouse after release runs %s", ", ".join(succeeded))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"after-event-{cursor}", tags={"hcpcs/release_runs": str(len(succeeded))})],
        cursor=cursor,
    )
