"""Tests for the raw-folder and warehouse-rebuild sensors and the quarterly download schedule.

Each sensor is evaluated against a temporary raw folder and an ephemeral Dagster instance, and
the runs it requests are executed in-process, as the daemon would launch them.
"""

import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.releases import hcpcs_release_partitions
from hcpcs.releases import discover_releases
from hcpcs.stage import read_staged
from pipelines.definitions import defs
from pipelines.resources import HcpcsSettings
from pipelines.schedules import DOWNLOAD_CRON, hcpcs_quarterly_download_schedule
from pipelines.sensors import CONTENT_HASH_TAG, RELEASE_JOB_NAME, WAREHOUSE_JOB_NAME
from tests.cms_files import first_record, write_text, write_zip

APRIL_ZIP = "2026-APR-alpha-numeric-hcpcs-file.zip"


def settings_for(tmp_path: Path) -> HcpcsSettings:
    return HcpcsSettings(raw_dir=str(tmp_path / "raw"), warehouse_path=str(tmp_path / "wh" / "hcpcs.duckdb"))


def definitions_for(settings: HcpcsSettings) -> dg.Definitions:
    """The project's definitions, with settings that point at the test's folders."""
    return dg.Definitions(
        assets=defs.assets,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources={"settings": settings},
    )


def write_release_zip(raw_dir: Path, codes: list[str], name: str = APRIL_ZIP, member: str = "HCPC2026_APR_ANWEB.txt"):
    data = "".join(first_record(code) + "\r\n" for code in codes).encode("cp1252")
    return write_zip(raw_dir / name, {member: data})


def tick(definitions: dg.Definitions, sensor_name: str, instance: dg.DagsterInstance, cursor: str | None):
    """Evaluate one sensor tick and return its SensorResult or SkipReason."""
    sensor = definitions.resolve_sensor_def(sensor_name)
    # A directly called sensor takes its resources from the context, not from `definitions`.
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=definitions, resources=dict(definitions.resources)
    )
    return sensor(context)


def apply_partition_requests(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """Add the requested partitions to the instance, as the sensor daemon does before launching runs."""
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def content_hash(raw_dir: Path, release_id: str) -> str:
    return {release.release_id: release.content_hash() for release in discover_releases(raw_dir)}[release_id]


# ---- hcpcs_raw_folder_sensor -----------------------------------------------------------------


def test_raw_sensor_new_release(tmp_path):
    settings = settings_for(tmp_path)
    write_release_zip(settings.raw_path, ["A0021", "A1"])
    definitions = definitions_for(settings)
    instance = dg.DagsterInstance.ephemeral()
    expected_hash = content_hash(settings.raw_path, "2026-04")

    result = tick(definitions, "hcpcs_raw_folder_sensor", instance, cursor=None)

    assert isinstance(result, dg.SensorResult)
    [run_request] = result.run_requests
    assert run_request.partition_key == "2026-04"
    assert run_request.run_key == f"2026-04:{expected_hash}"
    assert run_request.tags[CONTENT_HASH_TAG] == expected_hash
    [partition_request] = result.dynamic_partitions_requests
    assert isinstance(partition_request, dg.AddDynamicPartitionsRequest)
    assert partition_request.partitions_def_name == hcpcs_release_partitions.name
    assert list(partition_request.partition_keys) == ["2026-04"]
    assert json.loads(result.cursor) == {"2026-04": expected_hash}


def test_raw_sensor_second_tick_requests_nothing(tmp_path):
    settings = settings_for(tmp_path)
    write_release_zip(settings.raw_path, ["A0021", "A1"])
    definitions = definitions_for(settings)
    instance = dg.DagsterInstance.ephemeral()
    first = tick(definitions, "hcpcs_raw_folder_sensor", instance, cursor=None)
    apply_partition_requests(instance, first)

    second = tick(definitions, "hcpcs_raw_folder_sensor", instance, cursor=first.cursor)

    assert not second.run_requests
    assert not second.dynamic_partitions_requests
    assert second.skip_reason.skip_message == "No new or changed release among 1."
    assert second.cursor == first.cursor


def test_raw_sensor_changed_file_requests_new_run(tmp_path):
    settings = settings_for(tmp_path)
    write_release_zip(settings.raw_path, ["A0021", "A1"])
    definitions = definitions_for(settings)
    instance = dg.DagsterInstance.ephemeral()
    first = tick(definitions, "hcpcs_raw_folder_sensor", instance, cursor=None)
    apply_partition_requests(instance, first)

    write_release_zip(settings.raw_path, ["A0021", "A0080", "A1"])
    changed_hash = content_hash(settings.raw_path, "2026-04")
    result = tick(definitions, "hcpcs_raw_folder_sensor", instance, cursor=first.cursor)

    [run_request] = result.run_requests
    assert run_request.partition_key == "2026-04"
    assert run_request.run_key == f"2026-04:{changed_hash}"
    assert run_request.run_key != first.run_requests[0].run_key
    # The partition exists already, so only the run is requested.
    assert not result.dynamic_partitions_requests
    assert json.loads(result.cursor) == {"2026-04": changed_hash}


def test_raw_sensor_only_new_release_requested(tmp_path):
    settings = settings_for(tmp_path)
    write_release_zip(settings.raw_path, ["A0021"])
    definitions = definitions_for(settings)
    instance = dg.DagsterInstance.ephemeral()
    first = tick(definitions, "hcpcs_raw_folder_sensor", instance, cursor=None)
    apply_partition_requests(instance, first)

    write_text(settings.raw_path / "2026-JUL" / "HCPC2026_JUL_ANWEB.txt", [first_record("A0021"), first_record("A1")])
    result = tick(definitions, "hcpcs_raw_folder_sensor", instance, cursor=first.cursor)

    assert [request.partition_key for request in result.run_requests] == ["2026-07"]
    [partition_request] = result.dynamic_partitions_requests
    assert list(partition_request.partition_keys) == ["2026-07"]
    assert sorted(json.loads(result.cursor)) == ["2026-04", "2026-07"]


def test_raw_sensor_unreadable_cursor_starts_over(tmp_path):
    settings = settings_for(tmp_path)
    write_release_zip(settings.raw_path, ["A0021"])
    definitions = definitions_for(settings)

    result = tick(definitions, "hcpcs_raw_folder_sensor", dg.DagsterInstance.ephemeral(), cursor="not json")

    assert [request.partition_key for request in result.run_requests] == ["2026-04"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda raw: None, "does not exist"),
        (lambda raw: raw.mkdir(), "no CMS release"),
        (lambda raw: write_text(raw / "notes.txt", ["loose"]), "loose files that belong to no release: notes.txt"),
        (lambda raw: (raw.mkdir(), (raw / APRIL_ZIP).write_bytes(b"PK\x03\x04 cut")), "not a readable zip file"),
    ],
    ids=["missing-folder", "empty-folder", "loose-file", "cut-zip"],
)
def test_raw_sensor_folder_error_skips(tmp_path, setup, message):
    settings = settings_for(tmp_path)
    setup(settings.raw_path)
    definitions = definitions_for(settings)

    result = tick(definitions, "hcpcs_raw_folder_sensor", dg.DagsterInstance.ephemeral(), cursor='{"2026-04": "x"}')

    assert isinstance(result, dg.SkipReason)
    assert message in result.skip_message


# ---- the requested runs, executed --------------------------------------------------------------


def test_requested_runs_stage_release_and_rebuild_warehouse(tmp_path):
    settings = settings_for(tmp_path)
    write_release_zip(settings.raw_path, ["A0021", "A1"])
    definitions = definitions_for(settings)
    instance = dg.DagsterInstance.ephemeral()

    sensor_result = tick(definitions, "hcpcs_raw_folder_sensor", instance, cursor=None)
    apply_partition_requests(instance, sensor_result)
    [run_request] = sensor_result.run_requests
    release_run = definitions.resolve_job_def(RELEASE_JOB_NAME).execute_in_process(
        partition_key=run_request.partition_key, instance=instance, tags=run_request.tags
    )

    assert release_run.success
    [staged] = read_staged(settings.staging_path)
    assert staged.release_id == "2026-04"
    assert staged.summary["content_hash"] == run_request.tags[CONTENT_HASH_TAG]
    assert staged.records["hcpcs_code"].to_list() == ["A0021", "A1"]

    rebuild = tick(definitions, "hcpcs_warehouse_rebuild_sensor", instance, cursor=None)
    [rebuild_request] = rebuild.run_requests
    warehouse_run = definitions.resolve_job_def(WAREHOUSE_JOB_NAME).execute_in_process(
        instance=instance, tags=rebuild_request.tags
    )

    assert warehouse_run.success
    connection = duckdb.connect(settings.warehouse_path, read_only=True)
    codes = connection.execute("SELECT hcpcs_code FROM hcpcs_current ORDER BY 1").fetchall()
    connection.close()
    assert codes == [("A0021",), ("A1",)]

    # The warehouse run's own success must not request another rebuild.
    after_rebuild = tick(definitions, "hcpcs_warehouse_rebuild_sensor", instance, cursor=rebuild.cursor)
    assert not after_rebuild.run_requests
    assert after_rebuild.skip_reason.skip_message == f"No {RELEASE_JOB_NAME} run has succeeded since the last tick."


# ---- hcpcs_warehouse_rebuild_sensor ----------------------------------------------------------


def run_release(definitions: dg.Definitions, instance: dg.DagsterInstance, release_id: str):
    instance.add_dynamic_partitions(hcpcs_release_partitions.name, [release_id])
    return definitions.resolve_job_def(RELEASE_JOB_NAME).execute_in_process(partition_key=release_id, instance=instance)


def test_warehouse_sensor_coalesces_releases(tmp_path):
    settings = settings_for(tmp_path)
    write_release_zip(settings.raw_path, ["A0021"])
    write_text(settings.raw_path / "2026-JUL" / "HCPC2026_JUL_ANWEB.txt", [first_record("A0021"), first_record("A1")])
    definitions = definitions_for(settings)
    instance = dg.DagsterInstance.ephemeral()
    assert run_release(definitions, instance, "2026-04").success
    assert run_release(definitions, instance, "2026-07").success

    result = tick(definitions, "hcpcs_warehouse_rebuild_sensor", instance, cursor=None)

    [run_request] = result.run_requests
    assert run_request.tags["hcpcs/release_runs"] == "2"
    again = tick(definitions, "hcpcs_warehouse_rebuild_sensor", instance, cursor=result.cursor)
    assert isinstance(again, dg.SkipReason)
    assert again.skip_message == "No run has succeeded since the last tick."


def test_warehouse_sensor_waits_for_running_release(tmp_path):
    settings = settings_for(tmp_path)
    write_release_zip(settings.raw_path, ["A0021"])
    definitions = definitions_for(settings)
    instance = dg.DagsterInstance.ephemeral()
    assert run_release(definitions, instance, "2026-04").success
    # A run record in STARTED state stands for a release run that a run worker is executing.
    running = instance.create_run_for_job(
        definitions.resolve_job_def(RELEASE_JOB_NAME), status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": "2026-04"},
    )

    waiting = tick(definitions, "hcpcs_warehouse_rebuild_sensor", instance, cursor=None)

    assert isinstance(waiting, dg.SkipReason)
    assert "1 are still queued or running" in waiting.skip_message

    instance.report_run_canceled(running)
    result = tick(definitions, "hcpcs_warehouse_rebuild_sensor", instance, cursor=None)
    assert len(result.run_requests) == 1


def test_warehouse_sensor_ignores_other_jobs(tmp_path):
    settings = settings_for(tmp_path)
    write_release_zip(settings.raw_path, ["A0021"])
    definitions = definitions_for(settings)
    instance = dg.DagsterInstance.ephemeral()
    assert run_release(definitions, instance, "2026-04").success
    assert definitions.resolve_job_def(WAREHOUSE_JOB_NAME).execute_in_process(instance=instance).success
    first = tick(definitions, "hcpcs_warehouse_rebuild_sensor", instance, cursor=None)
    assert len(first.run_requests) == 1

    assert definitions.resolve_job_def(WAREHOUSE_JOB_NAME).execute_in_process(instance=instance).success
    second = tick(definitions, "hcpcs_warehouse_rebuild_sensor", instance, cursor=first.cursor)

    assert not second.run_requests
    assert int(second.cursor) > int(first.cursor)


# ---- hcpcs_quarterly_download_schedule -------------------------------------------------------


@pytest.mark.parametrize(
    ("scheduled", "year", "quarter"),
    [(datetime(2026, 1, 1, 6, tzinfo=timezone.utc), 2026, 1), (datetime(2026, 4, 7, 6, tzinfo=timezone.utc), 2026, 2),
     (datetime(2026, 10, 3, 6, tzinfo=timezone.utc), 2026, 4)],
    ids=["january", "april-7", "october"],
)
def test_download_schedule_requests_tick_quarter(scheduled, year, quarter):
    context = dg.build_schedule_context(scheduled_execution_time=scheduled)

    run_request = hcpcs_quarterly_download_schedule(context)

    config = run_request.run_config["ops"]["cms_release_download"]["config"]
    assert config == {"year": year, "quarter": quarter}
    assert run_request.tags["hcpcs/release"] == f"{year}-Q{quarter}"


def test_download_schedule_in_definitions():
    schedule = defs.resolve_schedule_def("hcpcs_quarterly_download_schedule")
    assert schedule.cron_schedule == DOWNLOAD_CRON == "0 6 1-7 1,4,7,10 *"
    assert schedule.job_name == "hcpcs_download_job"
    assert {key.to_user_string() for key in defs.resolve_job_def("hcpcs_download_job").asset_layer.executable_asset_keys} == {
        "cms_release_download"
    }
