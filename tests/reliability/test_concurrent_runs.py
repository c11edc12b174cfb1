"""Concurrent runs: two refreshes started at once never write the warehouse at the same time.

The second one waits for the write lock (`<warehouse>.lock`) or, past HCPCS_LOCK_TIMEOUT,
fails with the WarehouseLockedError message. The warehouse always ends as the complete
result of one of the two runs.
"""

from pathlib import Path

import pytest

from hcpcs.releases import read_release
from hcpcs.stage import load_release, read_staged, write_staged
from hcpcs.warehouse import build_warehouse
from tests.reliability.support import (
    Sandbox,
    building_files,
    loaded_record_count,
    raw_checksums,
    record_outcome,
    wait_for_file,
    warehouse_state,
    write_text_release,
)

JANUARY = {"A0021": "Ambulance service, outside state", "A0080": "Non-emergency transport", "25": "Significant service"}
APRIL = {"A0021": "Ambulance service, per mile", "A0080": "Non-emergency transport", "G0503": "Mobile ultrasound"}
LOCK_MESSAGE = "Another run is writing"


def stage_folder(sandbox: Sandbox, folder: str, staging: Path) -> None:
    write_staged(load_release(read_release(sandbox.raw / folder), "reliability"), staging)


def write_intervals(events: Path) -> list[tuple[int, float, float]]:
    """Return (pid, start, end) of every table write logged by the children, in start order."""
    rows = [line.split() for line in events.read_text().splitlines()]
    return sorted(((int(pid), float(start), float(end)) for pid, start, end in rows), key=lambda row: row[1])


@pytest.fixture
def two_stagings(sandbox: Sandbox):
    """Two staging folders, one with release 2026-01 and one with 2026-01 and 2026-04, and their warehouses."""
    counts = {"one": write_text_release(sandbox.raw, "2026-annual", JANUARY)}
    counts["two"] = counts["one"] + write_text_release(sandbox.raw, "2026-APR", APRIL)
    stagings = {"one": sandbox.root / "staging-one", "two": sandbox.root / "staging-two"}
    stage_folder(sandbox, "2026-annual", stagings["one"])
    stage_folder(sandbox, "2026-annual", stagings["two"])
    stage_folder(sandbox, "2026-APR", stagings["two"])
    states = {}
    for name, staging in stagings.items():
        reference = sandbox.root / f"reference-{name}" / "hcpcs.duckdb"
        build_warehouse(read_staged(staging), reference)
        states[name] = warehouse_state(reference)
    return stagings, states, counts


def test_builds_started_together_take_turns(sandbox: Sandbox, two_stagings):
    stagings, states, counts = two_stagings
    events = sandbox.root / "events.txt"
    raw_before = raw_checksums(sandbox.raw)

    processes = {
        name: sandbox.start(
            "build",
            RELIABILITY_STAGING=str(staging),
            RELIABILITY_SLOW_WRITE="1.5",
            RELIABILITY_EVENTS=str(events),
            HCPCS_LOCK_TIMEOUT="120",
        )
        for name, staging in stagings.items()
    }
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, f"{name}: {stderr}"
    sandbox.check_raw_unchanged(raw_before)

    first, second = write_intervals(events)
    assert first[2] <= second[1], f"table writes overlapped: {first} and {second}"
    last_writer = next(name for name, process in processes.items() if process.pid == second[0])
    assert warehouse_state(sandbox.warehouse) == states[last_writer]
    assert building_files(sandbox.warehouse) == []
    lost = record_outcome("two builds at once, both applied in turn", counts[last_writer],
                          loaded_record_count(sandbox.warehouse))
    assert lost == 0


def test_build_lock_timeout_fails_clearly(sandbox: Sandbox, two_stagings):
    stagings, states, counts = two_stagings
    writing = sandbox.root / "writing"
    go_on = sandbox.root / "go-on"

    holder = sandbox.start(
        "build",
        RELIABILITY_STAGING=str(stagings["two"]),
        RELIABILITY_MARKER=str(writing),
        RELIABILITY_HOLD_UNTIL=str(go_on),
    )
    wait_for_file(writing, holder, timeout=120)
    waiter = sandbox.run("build", RELIABILITY_STAGING=str(stagings["one"]), HCPCS_LOCK_TIMEOUT="1")
    holder_running = holder.poll() is None
    go_on.touch()
    stdout, stderr = holder.communicate(timeout=180)

    assert holder_running, "the holder ended before the waiter gave up, so the lock was never contended"
    assert waiter.returncode == 2
    assert f"error: {LOCK_MESSAGE} {sandbox.warehouse} (lock {sandbox.warehouse}.lock)" in waiter.stderr
    assert "did not finish within 1 s. Wait for it to end, then run again." in waiter.stderr
    assert holder.returncode == 0, stderr
    assert warehouse_state(sandbox.warehouse) == states["two"]
    assert building_files(sandbox.warehouse) == []
    lost = record_outcome("two builds at once, second timed out on the lock", counts["two"],
                          loaded_record_count(sandbox.warehouse))
    assert lost == 0


def test_pipeline_runs_started_together(sandbox: Sandbox):
    """Two `python -m pipelines.build` sharing DAGSTER_HOME, as `make run` does, after a first run staged everything."""
    expected = write_text_release(sandbox.raw, "2026-annual", JANUARY)
    expected += write_text_release(sandbox.raw, "2026-APR", APRIL)
    dagster_home = str(sandbox.root / "dagster_home")
    first = sandbox.run_build_module(DAGSTER_HOME=dagster_home)
    assert first.returncode == 0, first.stderr
    state = warehouse_state(sandbox.warehouse)

    events = sandbox.root / "events.txt"
    raw_before = raw_checksums(sandbox.raw)
    processes = [
        sandbox.start("pipeline", DAGSTER_HOME=dagster_home, RELIABILITY_SLOW_WRITE="1", RELIABILITY_EVENTS=str(events))
        for _ in range(2)
    ]
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-4000:]
        assert "warehouse written" in stdout
    sandbox.check_raw_unchanged(raw_before)

    first_write, second_write = write_intervals(events)
    assert first_write[2] <= second_write[1], f"table writes overlapped: {first_write} and {second_write}"
    assert warehouse_state(sandbox.warehouse) == state
    lost = record_outcome("two pipeline runs at once", expected, loaded_record_count(sandbox.warehouse))
    assert lost == 0


def test_pipeline_lock_timeout_fails_clearly(sandbox: Sandbox):
    expected = write_text_release(sandbox.raw, "2026-annual", JANUARY)
    writing = sandbox.root / "writing"
    go_on = sandbox.root / "go-on"
    holder = sandbox.start("pipeline", RELIABILITY_MARKER=str(writing), RELIABILITY_HOLD_UNTIL=str(go_on))
    wait_for_file(writing, holder, timeout=180)
    waiter = sandbox.run_build_module(HCPCS_LOCK_TIMEOUT="1")
    holder_running = holder.poll() is None
    go_on.touch()
    stdout, stderr = holder.communicate(timeout=300)

    assert holder_running, "the holder ended before the waiter gave up, so the lock was never contended"
    assert waiter.returncode == 1
    assert f"{LOCK_MESSAGE} {sandbox.warehouse}" in waiter.stderr
    assert "Wait for it to end, then run again." in waiter.stderr
    assert holder.returncode == 0, stderr[-4000:]
    lost = record_outcome("pipeline run timed out on the lock while another wrote", expected,
                          loaded_record_count(sandbox.warehouse))
    assert lost == 0


def test_runs_staging_same_new_release(sandbox: Sandbox):
    """Two runs stage release 2026-01 at once, and a barrier makes both reach the swap together.

    validated_hcpcs_release calls the same load_release + write_staged for every new release,
    so two `python -m pipelines.build` started together meet this race whenever both stage
    a release in the same instant.
    """
    write_text_release(sandbox.raw, "2026-annual", JANUARY)
    barrier = sandbox.root / "barrier"
    processes = [sandbox.start("stage", RELIABILITY_STAGE_BARRIER=str(barrier)) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]

    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0 or LOCK_MESSAGE in stderr, stderr[-2000:]
