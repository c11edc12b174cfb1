"""Build the warehouse from the raw folder through real Dagster runs: `python -m pipelines.build`.

Adds one dynamic partition per release found, runs `hcpcs_release_job` for each new or
changed release, then `hcpcs_warehouse_job`. Runs are recorded in DAGSTER_HOME when it is
set, so the Dagster UI shows them; otherwise in a temporary instance. Prints one line per
release: `loaded` (read now), `kept` (unchanged since this instance loaded it), `FAILED`, or
`staged only` (no longer in the raw folder, but its last good load is still in the warehouse).
"""

import os
import re
import sys

import dagster as dg

from assets.releases import PIPELINE_VERSION, hcpcs_release_files, hcpcs_release_partitions, validated_hcpcs_release
from assets.warehouse import hcpcs_warehouse
from hcpcs.errors import HcpcsError, SettingError
from hcpcs.releases import Release, discover_releases
from hcpcs.stage import read_staged
from pipelines.resources import HcpcsSettings, settings_from_environment


def _instance() -> dg.DagsterInstance:
    if os.environ.get("DAGSTER_HOME"):
        os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def _jobs(settings: HcpcsSettings) -> tuple[dg.JobDefinition, dg.JobDefinition]:
    """Return the release and warehouse jobs bound to `settings`, as the code location defines them."""
    from pipelines.definitions import release_job, warehouse_job

    definitions = dg.Definitions(
        assets=[hcpcs_release_files, validated_hcpcs_release, hcpcs_warehouse],
        jobs=[release_job, warehouse_job],
        resources={"settings": settings},
    )
    return definitions.resolve_job_def(release_job.name), definitions.resolve_job_def(warehouse_job.name)


def build(settings: HcpcsSettings, instance: dg.DagsterInstance) -> list[str]:
    """Load every release of the raw folder and rebuild the warehouse; return the error messages."""
    releases = discover_releases(settings.raw_path)
    known = set(instance.get_dynamic_partitions(hcpcs_release_partitions.name))
    new = [release.release_id for release in releases if release.release_id not in known]
    if new:
        instance.add_dynamic_partitions(hcpcs_release_partitions.name, new)

    release_job, warehouse_job = _jobs(settings)
    # Dagster's console logger prints every engine event and each failed step with its stack
    # trace. The command line prints one line per release and each error once instead, and the
    # full event log stays in DAGSTER_HOME for the UI.
    run_config = {"loggers": {"console": {"config": {"log_level": _log_level()}}}}
    errors: list[str] = []
    for release in releases:
        if _already_loaded(settings, instance, release):
            print(f"release {release.release_id:<10} {'kept':<11} {release.location}")
            continue
        result = release_job.execute_in_process(
            partition_key=release.release_id, instance=instance, run_config=run_config, raise_on_error=False
        )
        if result.success:
            print(f"release {release.release_id:<10} {'loaded':<11} {release.location}{_rejection_note(settings, release)}")
        else:
            print(f"release {release.release_id:<10} {'FAILED':<11} {release.location}")
            errors.extend(message for message in _failure_messages(result) if message not in errors)

    found = {release.release_id for release in releases}
    staged = read_staged(settings.staging_path)
    for item in staged:
        if item.release_id not in found:
            print(
                f"release {item.release_id:<10} {'staged only':<11} no longer in the raw folder; delete "
                f"{settings.staging_path / item.release_id} to drop it from the warehouse"
            )
    if not staged:
        errors.append("No release could be loaded, so the warehouse was not written.")
        return errors

    result = warehouse_job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
    if result.success:
        print(f"warehouse written: {settings.warehouse}")
    else:
        errors.extend(message for message in _failure_messages(result) if message not in errors)
    return errors


def _already_loaded(settings: HcpcsSettings, instance: dg.DagsterInstance, release: Release) -> bool:
    """Tell whether this instance already loaded the release from the same files with this pipeline version.

    The asset makes the same test and keeps the staged records. Skipping the run as well
    saves most of a refresh that adds one release to many.
    """
    materialized = instance.get_materialized_partitions(validated_hcpcs_release.key)
    if release.release_id not in materialized:
        return False
    earlier = read_staged(settings.staging_path, [release.release_id])
    if not earlier:
        return False
    summary = earlier[0].summary
    return summary.get("content_hash") == release.content_hash() and summary.get("pipeline_version") == PIPELINE_VERSION


def _rejection_note(settings: HcpcsSettings, release: Release) -> str:
    staged = read_staged(settings.staging_path, [release.release_id])
    if not staged:
        return ""
    summary = staged[0].summary
    parts = []
    if summary["rejected_records"]:
        parts.append(_count(summary["rejected_records"], "record") + " rejected")
    if summary.get("nulled_fields"):
        parts.append(_count(summary["nulled_fields"], "field") + " set to NULL")
    return f" ({', '.join(parts)}; see rejected_record)" if parts else ""


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """Return the message of each failed step, without the exception's class name."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            error = event.step_failure_data.error
            text = error.message.strip() if error else "step failed"
            if error and error.cause:
                text = error.cause.message.strip()
            messages.append(re.sub(r"^[\w.]+(Error|Failure): ", "", text))
    return messages


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level() -> str:
    """Return HCPCS_LOG_LEVEL in capitals, CRITICAL when unset, raising SettingError for an unknown level."""
    level = (os.environ.get("HCPCS_LOG_LEVEL") or "CRITICAL").upper()
    if level not in LOG_LEVELS:
        raise SettingError(
            f"invalid HCPCS_LOG_LEVEL {os.environ['HCPCS_LOG_LEVEL']!r}: it must be one of {', '.join(LOG_LEVELS)}. "
            "Change it, or unset it for the default CRITICAL."
        )
    return level


def main() -> int:
    try:
        settings = settings_from_environment()
        _log_level()
        errors = build(settings, _instance())
    except HcpcsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
