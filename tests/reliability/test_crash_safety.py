"""Crash safety: a refresh killed with SIGKILL at any point leaves the warehouse as it was.

Each test builds a warehouse, adds a release, and starts the refresh in a child process
(`refresh_child.py`). It kills the child at a pause point or after a random delay. Then the
warehouse file must open with exactly its earlier content, or exactly the new content once
os.replace has run. The raw files must be unchanged, and the next run must succeed.
"""

import os
import random
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from hcpcs.releases import read_release
from hcpcs.stage import load_release, read_staged, write_staged
from hcpcs.warehouse import build_warehouse
from tests.reliability.support import (
    Sandbox,
    building_files,
    kill_at_marker,
    loaded_record_count,
    raw_checksums,
    record_outcome,
    scaled,
    wait_for_file,
    warehouse_state,
    write_text_release,
)

JANUARY = {"A0021": "Ambulance service, outside state", "A0080": "Non-emergency transport", "J9999": "Antineoplastic drug", "25": "Significant, separately identifiable service"}
APRIL = {"A0021": "Ambulance service, outside state per mile", "A0080": "Non-emergency transport", "G0503": "Mobile ultrasound", "25": "Significant, separately identifiable service"}

# The points inside write_warehouse where the child stops until it is killed. Only after
# os.replace may the warehouse show the new state.
WAREHOUSE_PAUSE_POINTS = ("before_tables", "between_tables", "after_tables", "before_replace", "after_replace")


def stage_release(sandbox: Sandbox, folder: str) -> None:
    write_staged(load_release(read_release(sandbox.raw / folder), "reliability"), sandbox.staging)


class Refresh:
    """A warehouse built from release 2026-01 and the states before and after adding 2026-04."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.expected_records = write_text_release(sandbox.raw, "2026-annual", JANUARY)
        stage_release(sandbox, "2026-annual")
        build_warehouse(read_staged(sandbox.staging), sandbox.warehouse)
        self.before = warehouse_state(sandbox.warehouse)
        self.before_copy = sandbox.root / "before.duckdb"
        shutil.copyfile(sandbox.warehouse, self.before_copy)

        self.expected_records += write_text_release(sandbox.raw, "2026-APR", APRIL)
        stage_release(sandbox, "2026-APR")
        reference = sandbox.root / "reference" / "hcpcs.duckdb"
        build_warehouse(read_staged(sandbox.staging), reference)
        self.after = warehouse_state(reference)
        assert self.after != self.before

    def restore_before(self) -> None:
        """Put the pre-refresh warehouse file back, as if the refresh had never run."""
        copy = self.sandbox.root / "before-restore.duckdb"
        shutil.copyfile(self.before_copy, copy)
        os.replace(copy, self.sandbox.warehouse)


@pytest.fixture
def refresh(sandbox: Sandbox) -> Refresh:
    return Refresh(sandbox)


def run_again(sandbox: Sandbox) -> None:
    """Run the refresh again in this process, failing if it waits for a lock the killed child held."""
    raw_before = raw_checksums(sandbox.raw)
    build_warehouse(read_staged(sandbox.staging), sandbox.warehouse, lock_timeout_seconds=5)
    sandbox.check_raw_unchanged(raw_before)


@pytest.mark.parametrize("pause_at", WAREHOUSE_PAUSE_POINTS)
def test_build_killed_keeps_warehouse(sandbox: Sandbox, refresh: Refresh, pause_at: str):
    marker = sandbox.root / "paused"
    raw_before = raw_checksums(sandbox.raw)

    process = sandbox.start("build", RELIABILITY_PAUSE_AT=pause_at, RELIABILITY_MARKER=str(marker))
    kill_at_marker(process, marker)

    sandbox.check_raw_unchanged(raw_before)
    expected_state = refresh.after if pause_at == "after_replace" else refresh.before
    assert warehouse_state(sandbox.warehouse) == expected_state
    assert not sandbox.warehouse.with_name(sandbox.warehouse.name + ".wal").exists()
    if pause_at != "after_replace":
        # The killed build got as far as its own file, so the next run meets a leftover.
        assert f".hcpcs.duckdb.building-{process.pid}" in building_files(sandbox.warehouse)

    run_again(sandbox)
    assert warehouse_state(sandbox.warehouse) == refresh.after
    lost = record_outcome(
        f"build killed at {pause_at}, then run again",
        refresh.expected_records,
        loaded_record_count(sandbox.warehouse),
    )
    assert lost == 0


def test_build_killed_at_random_times(sandbox: Sandbox, refresh: Refresh):
    """Kill the build after random delays in the table writes. The file must be all old or all new."""
    marker = sandbox.root / "writing"
    rng = random.Random(20260401)

    # One undisturbed run measures how long the warehouse write takes on this machine.
    process = sandbox.start("build", RELIABILITY_MARKER=str(marker))
    wait_for_file(marker, process, timeout=120)
    started = time.monotonic()
    process.communicate(timeout=120)
    write_seconds = time.monotonic() - started
    assert process.returncode == 0

    # The first kill lands as the table writes start, so at least one kill hits a half-written file.
    delays = [0.0] + [rng.uniform(0, write_seconds * 1.2) for _ in range(scaled(4) - 1)]
    outcomes = {"before": 0, "after": 0}
    for delay in delays:
        refresh.restore_before()
        marker.unlink()
        raw_before = raw_checksums(sandbox.raw)
        process = sandbox.start("build", RELIABILITY_MARKER=str(marker))
        wait_for_file(marker, process, timeout=120)
        time.sleep(delay)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.communicate()
        sandbox.check_raw_unchanged(raw_before)

        state = warehouse_state(sandbox.warehouse)
        assert state in (refresh.before, refresh.after)
        outcomes["before" if state == refresh.before else "after"] += 1

    run_again(sandbox)
    assert warehouse_state(sandbox.warehouse) == refresh.after
    lost = record_outcome("build killed at random times, then run again", refresh.expected_records,
                          loaded_record_count(sandbox.warehouse))
    assert lost == 0
    assert outcomes["before"] > 0, f"no kill landed before os.replace: {outcomes}"


def test_next_build_removes_killed_build_file(sandbox: Sandbox, refresh: Refresh):
    marker = sandbox.root / "paused"
    process = sandbox.start("build", RELIABILITY_PAUSE_AT="between_tables", RELIABILITY_MARKER=str(marker))
    kill_at_marker(process, marker)

    run_again(sandbox)
    assert building_files(sandbox.warehouse) == []


def test_stage_kill_mid_swap_keeps_release(sandbox: Sandbox):
    expected = write_text_release(sandbox.raw, "2026-APR", APRIL)
    stage_release(sandbox, "2026-APR")
    write_text_release(sandbox.raw, "2026-APR", APRIL | {"A0080": "Non-emergency transport, per mile"})

    marker = sandbox.root / "paused"
    process = sandbox.start("stage", RELIABILITY_PAUSE_AT="staging_swap", RELIABILITY_MARKER=str(marker))
    kill_at_marker(process, marker)

    staged = read_staged(sandbox.staging)
    assert [item.release_id for item in staged] == ["2026-04"]
    assert staged[0].records.height == expected


def _first_record_count(text_file: Path) -> int:
    """Count the first records (record id 3 or 7) of a CMS text file, independently of the reader."""
    pattern = re.compile(rb"^(?:[A-Z][0-9]{4}|   [A-Z0-9]{2})[0-9]{5}[37]")
    return sum(1 for line in text_file.read_bytes().splitlines() if pattern.match(line))


@pytest.mark.real_data
def test_pipeline_kill_real_releases(sandbox: Sandbox, shared_raw_dir: Path):
    """`python -m pipelines.build` on real CMS releases, killed just before the swap, then run again."""
    text_releases = {
        "2016-annual": "HCPC2016_CONTR_ANWEB.txt",
        "2017-annual": "HCPC17_CONTR_ANWEB.txt",
        "2018-annual": "HCPC2018_CONTR_ANWEB_disc.txt",
        "2020-annual": "HCPC2020_ANWEB_w_disclaimer.txt",
    }
    for folder in ("2016-annual", "2017-annual"):
        (sandbox.raw / folder).symlink_to(shared_raw_dir / folder, target_is_directory=True)
        stage_release(sandbox, folder)
    build_warehouse(read_staged(sandbox.staging), sandbox.warehouse)
    before = warehouse_state(sandbox.warehouse)

    for folder in ("2018-annual", "2020-annual"):
        (sandbox.raw / folder).symlink_to(shared_raw_dir / folder, target_is_directory=True)
    marker = sandbox.root / "paused"
    raw_before = raw_checksums(sandbox.raw)
    process = sandbox.start("pipeline", RELIABILITY_PAUSE_AT="before_replace", RELIABILITY_MARKER=str(marker))
    kill_at_marker(process, marker, timeout=180)
    sandbox.check_raw_unchanged(raw_before)
    assert warehouse_state(sandbox.warehouse) == before

    completed = sandbox.run_build_module(HCPCS_LOCK_TIMEOUT="5")
    assert completed.returncode == 0, completed.stderr
    expected = sum(_first_record_count(shared_raw_dir / folder / name) for folder, name in text_releases.items())
    lost = record_outcome("real releases, pipeline killed before os.replace, then run again", expected,
                          loaded_record_count(sandbox.warehouse))
    assert lost == 0
