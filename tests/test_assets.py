"""Tests for the Dagster assets: real in-process runs into a temporary DuckDB file."""

import dagster as dg
import duckdb
import pytest

from assets.releases import hcpcs_release_files, hcpcs_release_partitions, validated_hcpcs_release
from assets.warehouse import hcpcs_warehouse
from pipelines.build import build
from pipelines.definitions import defs
from pipelines.resources import HcpcsSettings
from tests.cms_files import first_record, write_text
from tests.conftest import dump_warehouse


def settings_for(tmp_path, raw_dir=None) -> HcpcsSettings:
    return HcpcsSettings(raw_dir=str(raw_dir or tmp_path / "raw"), warehouse_path=str(tmp_path / "wh" / "hcpcs.duckdb"),
                         max_code_drop=1.0)


def materialize_release(instance, settings, release_id):
    return dg.materialize(
        [hcpcs_release_files, validated_hcpcs_release],
        partition_key=release_id,
        instance=instance,
        resources={"settings": settings},
    )


def test_definitions_load():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"hcpcs_release_files", "validated_hcpcs_release", "dim_hcpcs_code", "dim_hcpcs_release",
            "hcpcs_release_record", "rejected_record"} <= keys


def test_bad_record_reported_and_rest_loaded(tmp_path):
    write_text(tmp_path / "raw" / "2024-annual" / "HCPC2024_ANWEB.txt",
               [first_record("A0021"), first_record("A0080", act_eff_dt="20231340"), first_record("A1")])
    settings = settings_for(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(hcpcs_release_partitions.name, ["2024-01"])

    result = materialize_release(instance, settings, "2024-01")
    assert result.success
    [materialization] = [
        event.event_specific_data.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey("validated_hcpcs_release")
    ]
    assert materialization.metadata["rejected_records"].value == 1
    assert materialization.metadata["dagster/row_count"].value == 2
    checks = {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}
    assert checks == {"lines_reconciled": True, "no_rejected_records": False}

    result = dg.materialize([hcpcs_release_files, validated_hcpcs_release, hcpcs_warehouse],
                            selection=[hcpcs_warehouse], instance=instance, resources={"settings": settings})
    assert result.success
    connection = duckdb.connect(settings.warehouse_path, read_only=True)
    assert connection.execute("SELECT hcpcs_code FROM hcpcs_current ORDER BY 1").fetchall() == [("A0021",), ("A1",)]
    assert connection.execute(
        "SELECT line_number, hcpcs_code, field, value FROM rejected_record").fetchall() == [(2, "A0080", "act_eff_dt", "20231340")]
    connection.close()


def test_warehouse_checks_reported(tmp_path):
    write_text(tmp_path / "raw" / "2024-annual" / "HCPC2024_ANWEB.txt", [first_record("A0021"), first_record("A1")])
    settings = settings_for(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    assert build(settings, instance) == []
    assert [run.is_success for run in instance.get_runs()] == [True, True]

    result = dg.materialize([hcpcs_release_files, validated_hcpcs_release, hcpcs_warehouse],
                            selection=[hcpcs_warehouse], instance=instance, resources={"settings": settings})
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        ("dim_hcpcs_code", "one_current_version_per_code"): True,
        ("dim_hcpcs_code", "no_overlapping_versions"): True,
        ("dim_hcpcs_code", "valid_from_before_valid_to"): True,
        ("dim_hcpcs_release", "releases_reconciled"): True,
        ("hcpcs_release_record", "one_record_per_code_and_release"): True,
        ("dim_hcpcs_code", "coded_values_decoded"): True,
    }
    metadata = {
        event.asset_key.to_user_string(): event.event_specific_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert metadata["dim_hcpcs_code"]["dagster/row_count"].value == 2
    assert metadata["dim_hcpcs_code"]["current_versions"].value == 2
    # build() wrote the same warehouse already, so this rebuild opens and closes nothing.
    assert metadata["dim_hcpcs_code"]["versions_opened"].value == 0
    assert metadata["dim_hcpcs_code"]["versions_closed"].value == 0
    assert "dagster/column_lineage" in metadata["dim_hcpcs_code"]
    assert metadata["dim_hcpcs_release"]["releases"].value == ["2024-01"]


def test_file_error_fails_release_but_keeps_warehouse(tmp_path):
    raw = tmp_path / "raw"
    write_text(raw / "2024-annual" / "HCPC2024_ANWEB.txt", [first_record("A0021")])
    settings = settings_for(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    assert build(settings, instance) == []

    path = raw / "2024-annual" / "HCPC2024_ANWEB.txt"
    path.write_bytes(path.read_bytes()[:150])
    errors = build(settings, instance)
    assert len(errors) == 1
    assert "HCPC2024_ANWEB.txt" in errors[0]
    assert "cut short" in errors[0]
    connection = duckdb.connect(settings.warehouse_path, read_only=True)
    assert connection.execute("SELECT hcpcs_code FROM hcpcs_current").fetchall() == [("A0021",)]
    connection.close()


@pytest.mark.slow
def test_real_releases_through_dagster_twice(shared_raw_dir, tmp_path):
    settings = settings_for(tmp_path, raw_dir=shared_raw_dir)
    settings = HcpcsSettings(raw_dir=str(shared_raw_dir), warehouse_path=settings.warehouse_path)
    instance = dg.DagsterInstance.ephemeral()
    assert build(settings, instance) == []
    first = dump_warehouse(settings.warehouse_path)
    assert len(first["dim_hcpcs_release"]) == 8
    assert len(first["hcpcs_release_record"]) == 56368

    assert build(settings, instance) == []
    assert dump_warehouse(settings.warehouse_path) == first


def test_build_prints_rejections_and_staged_only(tmp_path, capsys):
    raw = tmp_path / "raw"
    write_text(raw / "2024-annual" / "HCPC2024_ANWEB.txt", [first_record("A0021"), first_record("A0080", action_cd="X")])
    write_text(raw / "2024-APR" / "HCPC2024_APR_ANWEB.txt", [first_record("A0021"), first_record("A0080")])
    settings = settings_for(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    assert build(settings, instance) == []
    output = capsys.readouterr().out
    assert "release 2024-01    loaded" in output
    assert "(1 record rejected; see rejected_record)" in output
    assert [run.job_name for run in instance.get_runs()] == ["hcpcs_warehouse_job", "hcpcs_release_job",
                                                             "hcpcs_release_job"]

    import shutil

    shutil.rmtree(raw / "2024-APR")
    assert build(settings, instance) == []
    output = capsys.readouterr().out
    assert "release 2024-01    kept" in output
    assert "release 2024-04    staged only" in output


def test_build_without_loadable_release_writes_nothing(tmp_path):
    path = write_text(tmp_path / "raw" / "2024-annual" / "HCPC2024_ANWEB.txt", [first_record("A0021")])
    path.write_bytes(path.read_bytes()[:-2])
    settings = settings_for(tmp_path)
    errors = build(settings, dg.DagsterInstance.ephemeral())
    assert errors[0].startswith("2024-annual/HCPC2024_ANWEB.txt, line 1: the file ends inside line 1")
    assert errors[-1] == "No release could be loaded, so the warehouse was not written."
    assert not (tmp_path / "wh" / "hcpcs.duckdb").exists()
