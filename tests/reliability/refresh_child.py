"""Run one refresh in a child process, with probes that let a test kill it at a chosen point.

The reliability tests start this script, and users never need to:

    python tests/reliability/refresh_child.py pipeline   # same as `python -m pipelines.build`
    python tests/reliability/refresh_child.py build      # read_staged + build_warehouse only
    python tests/reliability/refresh_child.py stage      # load_release + write_staged per release

Paths come from HCPCS_RAW_DIR and HCPCS_WAREHOUSE, as for `python -m pipelines.build`, and
the staging folder from RELIABILITY_STAGING when set. The probes change nothing unless
these variables are set:

- RELIABILITY_PAUSE_AT: a name from PAUSE_POINTS. At that point the child creates
  RELIABILITY_MARKER and sleeps until the test kills it.
- RELIABILITY_MARKER: without RELIABILITY_PAUSE_AT, the file created when the table writes start.
- RELIABILITY_SLOW_WRITE: seconds to sleep before writing the tables, so that runs overlap.
- RELIABILITY_HOLD_UNTIL: a file to wait for before writing the tables. The child holds the
  write lock until the test creates it.
- RELIABILITY_EVENTS: a file that gets one line per table write with pid, start and end time.
- RELIABILITY_STAGE_BARRIER: a folder where two runs wait for each other before each moves its
  first staged release into place.
"""

import os
import pathlib
import runpy
import sys
import time
from pathlib import Path

PAUSE_POINTS = (
    "before_tables",  # the new DuckDB file exists, no table written yet
    "between_tables",  # two of the tables written
    "after_tables",  # every table written, before CHECKPOINT
    "before_replace",  # the new file is complete and synced, os.replace not yet called
    "after_replace",  # os.replace done, parent folder not yet synced
    "staging_swap",  # write_staged moved the old staged folder away, the new one not yet in place
)

PAUSE_AT = os.environ.get("RELIABILITY_PAUSE_AT", "")
MARKER = os.environ.get("RELIABILITY_MARKER", "")


def pause(point: str) -> None:
    """Create the marker and sleep, when `point` is the requested pause point."""
    if point != PAUSE_AT:
        return
    Path(MARKER).write_text(str(os.getpid()))
    time.sleep(600)
    os._exit(3)  # the test should have killed this process long before


def install_probes() -> None:
    """Patch the warehouse write, os.replace and Path.rename in this process for the RELIABILITY_* variables."""
    import hcpcs.warehouse as warehouse

    if PAUSE_AT and PAUSE_AT not in PAUSE_POINTS:
        raise SystemExit(f"RELIABILITY_PAUSE_AT={PAUSE_AT!r} is not one of {', '.join(PAUSE_POINTS)}")
    warehouse_file = os.path.abspath(warehouse_path())
    slow_write = float(os.environ.get("RELIABILITY_SLOW_WRITE") or 0)
    hold_until = os.environ.get("RELIABILITY_HOLD_UNTIL", "")
    events = os.environ.get("RELIABILITY_EVENTS", "")

    original_create_tables = warehouse._create_tables

    def create_tables(connection, tables):
        started = time.time()
        if MARKER and not PAUSE_AT:
            Path(MARKER).write_text(str(os.getpid()))
        pause("before_tables")
        time.sleep(slow_write)
        if hold_until:
            wait_for_path(Path(hold_until))
        original_create_tables(connection, tables)
        pause("after_tables")
        if events:
            with open(events, "a") as handle:
                handle.write(f"{os.getpid()} {started} {time.time()}\n")

    warehouse._create_tables = create_tables

    original_load = warehouse._load
    load_calls = []

    def load(connection, name, frame):
        load_calls.append(name)
        if len(load_calls) == 3:
            pause("between_tables")
        original_load(connection, name, frame)

    warehouse._load = load

    original_replace = os.replace

    def replace(source, destination, **kwargs):
        is_warehouse = os.path.abspath(destination) == warehouse_file
        if is_warehouse:
            pause("before_replace")
        original_replace(source, destination, **kwargs)
        if is_warehouse:
            pause("after_replace")

    os.replace = replace

    original_rename = pathlib.Path.rename
    barrier = os.environ.get("RELIABILITY_STAGE_BARRIER", "")
    waited = []

    def rename(self, target):
        target_path = Path(target)
        is_swap_in = self.name.startswith(".") and not target_path.name.startswith(".")
        if barrier and is_swap_in and not waited:
            waited.append(True)
            wait_at_barrier(Path(barrier))
        result = original_rename(self, target)
        if "-retired-" in target_path.name:
            pause("staging_swap")
        return result

    pathlib.Path.rename = rename


def wait_for_path(path: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def wait_at_barrier(folder: Path, parties: int = 2, timeout: float = 60) -> None:
    """Announce this process in `folder`, then wait until `parties` processes have."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while len(list(folder.iterdir())) < parties and time.monotonic() < deadline:
        time.sleep(0.01)


# The same variables and defaults as pipelines.resources.settings_from_environment, read
# here without importing Dagster, which would add about a second to every child start.
def warehouse_path() -> Path:
    return Path(os.environ.get("HCPCS_WAREHOUSE") or "data/warehouse/hcpcs.duckdb")


def staging_folder() -> Path:
    return Path(os.environ.get("RELIABILITY_STAGING") or warehouse_path().parent / "staging")


def run_build() -> int:
    from hcpcs.errors import HcpcsError
    from hcpcs.stage import read_staged
    from hcpcs.warehouse import DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_MAX_CODE_DROP, build_warehouse

    max_code_drop = float(os.environ.get("HCPCS_MAX_CODE_DROP") or DEFAULT_MAX_CODE_DROP)
    lock_timeout = float(os.environ.get("HCPCS_LOCK_TIMEOUT") or DEFAULT_LOCK_TIMEOUT_SECONDS)
    try:
        build_warehouse(read_staged(staging_folder()), warehouse_path(), max_code_drop, lock_timeout)
    except HcpcsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"warehouse written: {warehouse_path()}")
    return 0


def run_stage() -> int:
    from hcpcs.releases import discover_releases
    from hcpcs.stage import load_release, write_staged

    raw_dir = Path(os.environ.get("HCPCS_RAW_DIR") or "data/raw")
    for release in discover_releases(raw_dir):
        write_staged(load_release(release, "reliability"), staging_folder())
        print(f"staged {release.release_id}")
    return 0


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    install_probes()
    if mode == "pipeline":
        runpy.run_module("pipelines.build", run_name="__main__", alter_sys=True)
        return 0
    if mode == "build":
        return run_build()
    if mode == "stage":
        return run_stage()
    print(f"unknown mode {mode!r}. Use pipeline, build or stage.", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main())
