"""Build the warehouse from the raw folder through real Dagster runs: `python -m pipelines.build`.

Adds one dynamic partition per release found, runs the release job for each one, then
rebuilds the warehouse. Runs are recorded in DAGSTER_HOME when it is set, so the Dagster UI
shows them; otherwise in a temporary instance.
"""

import os
import sys

import dagster as dg

from assets.releases import PIPELINE_VERSION, hcpcs_release_files, hcpcs_release_partitions, validated_hcpcs_release
from assets.warehouse import hcpcs_warehouse
from hcpcs.errors import HcpcsError
from hcpcs.releases import discover_releases
from hcpcs.stage import read_staged
from pipelines.resources import HcpcsSettings, settings_from_environment


def _instance() -> dg.DagsterInstance:
    if os.environ.get("DAGSTER_HOME"):
        os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def build(settings: HcpcsSettings, instance: dg.DagsterInstance) -> list[str]:
    """Load every release of the raw folder and rebuild the warehouse; return the error messages."""
    releases = discover_releases(settings.raw_path)
    known = set(instance.get_dynamic_partitions(hcpcs_release_partitions.name))
    new = [release.release_id for release in releases if release.release_id not in known]
    if new:
        instance.add_dynamic_partitions(hcpcs_release_partitions.name, new)

    resources = {"settings": settings}
    # Dagster's console logger prints every engine event at DEBUG; a command-line build shows
    # only warnings and errors, and the full event log stays in DAGSTER_HOME for the UI.
    run_config = {"loggers": {"console": {"config": {"log_level": os.environ.get("HCPCS_LOG_LEVEL", "WARNING")}}}}
    errors = []
    for release in releases:
        if _already_loaded(settings, instance, release):
            print(f"release {release.release_id:<10} {'kept':<7} {release.location}")
            continue
        result = dg.materialize(
            [hcpcs_release_files, validated_hcpcs_release],
            partition_key=release.release_id,
            instance=instance,
            resources=resources,
            run_config=run_config,
            raise_on_error=False,
        )
        status = "loaded" if result.success else "FAILED"
        print(f"release {release.release_id:<10} {status:<7} {release.location}")
        if not result.success:
            errors.extend(_failure_messages(result))

    result = dg.materialize(
        [hcpcs_release_files, validated_hcpcs_release, hcpcs_warehouse],
        selection=[hcpcs_warehouse],
        instance=instance,
        resources=resources,
        run_config=run_config,
        raise_on_error=False,
    )
    if result.success:
        print(f"warehouse written: {settings.warehouse}")
    else:
        errors.extend(_failure_messages(result))
    return errors


def _already_loaded(settings: HcpcsSettings, instance: dg.DagsterInstance, release) -> bool:
    """Tell whether this instance already loaded the release from the same files with this pipeline version.

    The asset makes the same test and keeps the staged records; skipping the run as well
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


def _failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    messages = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            error = event.step_failure_data.error
            text = error.message.strip() if error else "step failed"
            if error and error.cause:
                text = error.cause.message.strip()
            messages.append(text)
    return messages


def main() -> int:
    settings = settings_from_environment()
    try:
        errors = build(settings, _instance())
    except HcpcsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
