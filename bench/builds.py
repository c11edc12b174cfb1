"""Whole builds as child processes: `python -m pipelines.build` through Dagster, and the same work without it.

Every timed build starts from a folder prepared for it: an empty one for a full build, or a
copy of a folder built once beforehand for an incremental refresh. The raw folder of a build
holds symbolic links to the release folders of the shared raw folder, so that no CMS file is
copied.
"""

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure import ChildRun, Timing, child_environment, python_command, run_child


@dataclass
class BuildResults:
    """Timings and peak memory of the builds, by name."""

    timings: dict[str, Timing] = field(default_factory=dict)
    peak_rss_bytes: dict[str, int] = field(default_factory=dict)
    facts: dict[str, object] = field(default_factory=dict)


def link_releases(raw_dir: Path, names: list[str], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        (target / name).symlink_to(raw_dir / name)


def _layout(work_dir: Path) -> dict[str, Path]:
    return {
        "raw": work_dir / "raw",
        "dagster_home": work_dir / "dagster_home",
        "warehouse": work_dir / "warehouse" / "hcpcs.duckdb",
    }


def run_dagster_build(work_dir: Path, profile_path: Path | None = None) -> ChildRun:
    """Run `python -m pipelines.build` on `work_dir`/raw with its own DAGSTER_HOME and warehouse."""
    paths = _layout(work_dir)
    paths["dagster_home"].mkdir(parents=True, exist_ok=True)
    env = child_environment(
        DAGSTER_HOME=str(paths["dagster_home"]),
        HCPCS_RAW_DIR=str(paths["raw"]),
        HCPCS_WAREHOUSE=str(paths["warehouse"]),
    )
    profile_args = ["-m", "cProfile", "-o", str(profile_path)] if profile_path else []
    return run_child(python_command(*profile_args, "-m", "pipelines.build"), env=env)


def run_plain_build(work_dir: Path, profile_path: Path | None = None) -> ChildRun:
    """Run `python -m bench.plain_build`: the same work through plain function calls."""
    paths = _layout(work_dir)
    profile_args = ["-m", "cProfile", "-o", str(profile_path)] if profile_path else []
    args = python_command(*profile_args, "-m", "bench.plain_build", "--raw", str(paths["raw"]),
                          "--warehouse", str(paths["warehouse"]))
    return run_child(args, env=child_environment())


_RUNNERS = {"dagster": run_dagster_build, "plain": run_plain_build}


def measure_full_builds(
    raw_dir: Path, names: list[str], repeats: int, results: BuildResults, keep_last_in: Path | None = None
) -> dict[str, Path]:
    """Time full builds of the named releases from an empty folder, through Dagster and without it.

    With `keep_last_in`, the folder of each kind's last build is kept there and returned by
    kind, to serve as the starting point of incremental builds on the same releases.
    """
    kept = {}
    for kind, runner in _RUNNERS.items():
        timing = Timing()
        peak = 0
        for repeat in range(repeats):
            work_dir = Path(tempfile.mkdtemp(prefix=f"hcpcs-bench-{kind}-full-"))
            keep = keep_last_in is not None and repeat == repeats - 1
            try:
                link_releases(raw_dir, names, _layout(work_dir)["raw"])
                run = runner(work_dir)
                _check_warehouse(work_dir)
            finally:
                if keep:
                    kept[kind] = Path(shutil.move(work_dir, keep_last_in / f"{kind}-snapshot"))
                else:
                    shutil.rmtree(work_dir, ignore_errors=True)
            timing.samples.append(run.seconds)
            peak = max(peak, run.peak_rss_bytes)
        results.timings[f"{kind}_full_build"] = timing
        results.peak_rss_bytes[f"{kind}_full_build"] = peak
    return kept


def measure_incremental_builds(
    raw_dir: Path,
    names: list[str],
    added: str,
    repeats: int,
    results: BuildResults,
    snapshots: dict[str, Path] | None = None,
) -> None:
    """Time a refresh that adds release folder `added` to a folder already built from `names`.

    The built folder (raw links, DAGSTER_HOME if the kind uses one, staging, warehouse) is
    made once per kind, unless `snapshots` gives one. It is copied to the same path before
    every timed run, so each run starts from the same state with the same absolute paths.
    """
    base = Path(tempfile.mkdtemp(prefix="hcpcs-bench-incremental-"))
    try:
        for kind, runner in _RUNNERS.items():
            snapshot = (snapshots or {}).get(kind)
            if snapshot is None:
                snapshot = base / f"{kind}-snapshot"
                link_releases(raw_dir, names, _layout(snapshot)["raw"])
                runner(snapshot)
                _check_warehouse(snapshot)

            work_dir = base / f"{kind}-work"
            timing = Timing()
            peak = 0
            for _ in range(repeats):
                shutil.rmtree(work_dir, ignore_errors=True)
                shutil.copytree(snapshot, work_dir, symlinks=True)
                link_releases(raw_dir, [added], _layout(work_dir)["raw"])
                run = runner(work_dir)
                _check_warehouse(work_dir)
                timing.samples.append(run.seconds)
                peak = max(peak, run.peak_rss_bytes)
            results.timings[f"{kind}_incremental_build"] = timing
            results.peak_rss_bytes[f"{kind}_incremental_build"] = peak
    finally:
        shutil.rmtree(base, ignore_errors=True)


def profile_build(raw_dir: Path, names: list[str], added: str | None, kind: str, stats_path: Path) -> None:
    """Profile one Dagster or plain build with cProfile, full (`added` None) or incremental, untimed."""
    runner = _RUNNERS[kind]
    work_dir = Path(tempfile.mkdtemp(prefix=f"hcpcs-bench-profile-{kind}-"))
    try:
        link_releases(raw_dir, names, _layout(work_dir)["raw"])
        if added is not None:
            runner(work_dir)
            link_releases(raw_dir, [added], _layout(work_dir)["raw"])
        runner(work_dir, profile_path=stats_path)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _check_warehouse(work_dir: Path) -> None:
    warehouse = _layout(work_dir)["warehouse"]
    if not warehouse.exists():
        raise RuntimeError(f"the build finished without writing {warehouse}")
