"""Measure the pipeline and write docs/benchmarks.md: `python bench/run.py [--repeats N] [--quick] [--no-write]`.

One run times every stage on a real release, the bare-library floors and the common
baselines for the same files, whole builds through Dagster and without it, and a synthetic
history workload with its peak memory. It then checks the targets, profiles the missed ones
and writes the page. The raw JSON goes to bench/results/latest.json.
"""

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
# Run as a script, Python puts bench/ first on sys.path; the repository root is needed instead,
# so that `bench`, `hcpcs` and `pipelines` import as packages.
if sys.path and Path(sys.path[0]).resolve() == REPO_DIR / "bench":
    sys.path[0] = str(REPO_DIR)
elif str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from bench import builds, profiling, report, stages  # noqa: E402 - needs the sys.path fix above
from bench.machine import describe_machine, load_average  # noqa: E402
from bench.measure import child_environment, python_command, run_child  # noqa: E402
from bench.synthetic import scale_folder  # noqa: E402
from hcpcs.history import build_code_versions  # noqa: E402
from hcpcs.normalize import normalize_records  # noqa: E402
from hcpcs.readers import read_anweb_text, read_anweb_workbook  # noqa: E402

DEFAULT_RAW_DIR = REPO_DIR.parent / "shared" / "data" / "hcpcs" / "raw"
DEFAULT_OUTPUT = REPO_DIR / "docs" / "benchmarks.md"
RESULTS_FILE = REPO_DIR / "bench" / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs of each whole build and of the synthetic workload (default 5)")
    parser.add_argument("--stage-repeats", type=int, default=15,
                        help="timed runs of each in-process stage on the real release (default 15)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one timed run each, two releases, a small synthetic workload")
    parser.add_argument("--no-write", action="store_true",
                        help="print the page to stdout instead of writing it and bench/results/latest.json")
    parser.add_argument("--raw-dir", type=Path, default=DEFAULT_RAW_DIR,
                        help=f"folder of CMS releases, one folder per release (default {DEFAULT_RAW_DIR})")
    parser.add_argument("--release", default="2019-annual",
                        help="release folder, with both the .txt file and the workbook, for the stage timings")
    parser.add_argument("--synthetic-releases", type=int, default=100, help="releases of the large synthetic workload")
    parser.add_argument("--synthetic-codes", type=int, default=10_000,
                        help="codes per release of the large synthetic workload; the small one has a tenth")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown page to write")
    args = parser.parse_args(argv)

    # One untimed run before the timed ones keeps one-time costs out of the medians; a smoke
    # run has no medians to protect.
    args.warmup = 1
    if args.quick:
        args.warmup = 0
        args.repeats = 1
        args.stage_repeats = 1
        args.synthetic_releases = 20
        args.synthetic_codes = 1_000

    if args.repeats < 1 or args.stage_repeats < 1:
        parser.error("--repeats and --stage-repeats must be at least 1")
    if args.synthetic_codes < 10:
        parser.error("--synthetic-codes must be at least 10, so that the small workload has a code per release")
    if not args.raw_dir.is_dir():
        parser.error(f"raw folder {args.raw_dir} not found; pass --raw-dir with the folder of CMS releases")
    return args


def _progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _command_line(argv: list[str] | None) -> str:
    executable = Path(sys.executable)
    try:
        interpreter = str(executable.relative_to(REPO_DIR))
    except ValueError:
        interpreter = executable.name
    script = Path(__file__).resolve().relative_to(REPO_DIR)
    return shlex.join([interpreter, str(script), *(sys.argv[1:] if argv is None else argv)])


def generate_synthetic(releases: int, codes: list[int], work_dir: Path) -> None:
    """Write the synthetic workloads of every size in one child process."""
    run_child(python_command("-m", "bench.synthetic", "generate", "--releases", str(releases), "--codes",
                             *map(str, codes), "--out", str(work_dir)), env=child_environment())


def measure_synthetic(releases: int, codes: int, repeats: int, work_dir: Path, profile_path: Path | None) -> dict:
    """Measure one generated workload in a child process of its own; return the child's JSON."""
    args = ["-m", "bench.synthetic", "measure", "--input", str(scale_folder(work_dir, releases, codes)),
            "--repeats", str(repeats)]
    if profile_path is not None:
        args += ["--profile", str(profile_path)]
    run = run_child(python_command(*args), env=child_environment())
    return json.loads(run.stdout)


def _stage_profile(function, runs: int) -> list[str]:
    stats = profiling.profile_calls(function, runs)
    hotspots = profiling.project_hotspots(stats, runs)
    lines = [f"cProfile over {runs} runs: {report.format_seconds(stats.total_tt / runs)} per run in all."]
    return lines + [hotspot.to_text() for hotspot in hotspots]


def _build_profile(stats_path: Path) -> list[str]:
    stats = profiling.load_stats(stats_path)
    total, anchors = profiling.orchestration_breakdown(stats)
    lines = [f"cProfile of one build: {report.format_seconds(total)} in all (profiling slows Python code, "
             "so these add up to more than the timed median). Cumulative times, which overlap:"]
    lines += [f"{anchor.label}: {report.format_seconds(anchor.seconds)} over {anchor.calls} calls"
              for anchor in anchors]
    lines.append("Project functions with the most time of their own (library calls included):")
    lines += ["  " + hotspot.to_text() for hotspot in profiling.project_hotspots(stats, 1)]
    return lines


def profile_missed_targets(results: dict, context: dict, args: argparse.Namespace, work_dir: Path) -> dict:
    """Run the profile of each missed target once; return the lines to print, by profile name."""
    needed = {target["profile"] for target in results["targets"] if target["met"] is False and target["profile"]}
    profiles: dict[str, list[str]] = {}
    runs = max(args.stage_repeats, 3)
    text, workbook, release = context["text"], context["workbook"], context["release"]
    statements = context["statements"]

    if "text_read_normalize" in needed:
        profiles["text_read_normalize"] = _stage_profile(
            lambda: normalize_records(read_anweb_text(text, "text").records, release.release_id, "text", "text"),
            runs,
        )
    if "read_text" in needed:
        profiles["read_text"] = _stage_profile(lambda: read_anweb_text(text, "text"), runs)
    if "read_workbook" in needed:
        profiles["read_workbook"] = _stage_profile(lambda: read_anweb_workbook(workbook, "workbook"), runs)
    if "history_versions" in needed:
        profiles["history_versions"] = _stage_profile(lambda: build_code_versions(statements), runs)

    for key, added in (("dagster_full_build", None), ("dagster_incremental_build", args.added_release)):
        if key not in needed:
            continue
        if args.quick:
            profiles[key] = ["not profiled in a --quick run"]
            continue
        _progress(f"profiling {key}")
        stats_path = work_dir / f"{key}.prof"
        names = args.build_releases if added is None else args.base_releases
        builds.profile_build(args.raw_dir, names, added, "dagster", stats_path)
        profiles[key] = _build_profile(stats_path)

    large = results["synthetic"].get("large")
    if "synthetic" in needed:
        _progress("profiling the large synthetic workload")
        stats_path = work_dir / "synthetic.prof"
        measure_synthetic(args.synthetic_releases, args.synthetic_codes, 0, work_dir, stats_path)
        stats = profiling.load_stats(stats_path)
        profiles["synthetic"] = [
            f"cProfile of one history build + write: {report.format_seconds(stats.total_tt)} in all."
        ] + [hotspot.to_text() for hotspot in profiling.project_hotspots(stats, 1)]
    if "synthetic_memory" in needed and large:
        peaks = large["part_peak_rss_bytes"]
        worst = max(peaks, key=peaks.get)
        profiles["synthetic_memory"] = [
            "Peak RSS by step: " + ", ".join(f"{name} {report.format_bytes(value)}" for name, value in peaks.items())
            + f"; `{worst}` sets the peak.",
            f"RSS before the first step, with the input frames loaded: {report.format_bytes(large['rss_before_bytes'])}"
            f" (polars estimates the records and statements frames at {report.format_bytes(large['input_bytes'])}).",
        ]
    if "synthetic_growth" in needed and large and results["synthetic"].get("small"):
        small = results["synthetic"]["small"]
        profiles["synthetic_growth"] = [
            f"`{name}`: {report.format_seconds(small['timings'][name]['median'])} → "
            f"{report.format_seconds(large['timings'][name]['median'])} "
            f"({large['timings'][name]['median'] / small['timings'][name]['median']:.1f}×)"
            for name in ("versions", "changes", "write")
        ]
    return profiles


def choose_releases(args: argparse.Namespace) -> None:
    """Pick the release folders of the builds and of the history measurement from the raw folder."""
    folders = [release.location.name for release in stages.discover_releases(args.raw_dir)]
    if args.release not in folders:
        raise SystemExit(f"release folder {args.release} not found in {args.raw_dir}; found: {', '.join(folders)}")
    if len(folders) < 2:
        raise SystemExit(f"{args.raw_dir} contains {len(folders)} release; the incremental build needs at least two")
    args.added_release = folders[-1]
    if args.quick:
        args.base_releases = [folders[-2]]
        args.build_releases = [folders[-2]]
        args.history_releases = sorted({args.release, folders[-1]})
    else:
        args.base_releases = folders[:-1]
        args.build_releases = folders
        args.history_releases = None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    choose_releases(args)
    started = time.perf_counter()
    results: dict = {
        "command": _command_line(argv),
        "machine": describe_machine(),
        "load": {"start": load_average()},
        "settings": {
            "repeats": args.repeats,
            "stage_repeats": args.stage_repeats,
            "warmup": args.warmup,
            "quick": args.quick,
            "release": args.release,
            "raw_dir_name": args.raw_dir.name,
            "build_releases": args.build_releases,
            "added_release": args.added_release,
            "allocator": os.environ.get("HCPCS_BENCH_ALLOCATOR"),
        },
    }

    _progress(f"stages on {args.release}")
    stage_results = stages.StageResults()
    release = stages.find_release(args.raw_dir, args.release)
    stages.measure_release_stages(release, args.stage_repeats, args.warmup, stage_results)

    _progress("loading releases for the history build and the write")
    staged = stages.load_all_releases(args.raw_dir, args.history_releases)
    statements = stages.measure_history_and_write(staged, args.stage_repeats, args.warmup, stage_results)
    results["stages"] = {
        "timings": {name: timing.to_dict() for name, timing in stage_results.timings.items()},
        "facts": stage_results.facts,
        "skipped": stage_results.skipped,
    }

    build_results = builds.BuildResults()
    with tempfile.TemporaryDirectory(prefix="hcpcs-bench-snapshots-") as snapshot_root:
        # When the incremental builds start from the releases of the full builds (--quick),
        # the last full build of each kind is their starting point, which saves two builds.
        reuse = args.base_releases == args.build_releases
        _progress(f"full builds of {len(args.build_releases)} releases, {args.repeats} runs each")
        snapshots = builds.measure_full_builds(args.raw_dir, args.build_releases, args.repeats, build_results,
                                               keep_last_in=Path(snapshot_root) if reuse else None)
        _progress(f"incremental builds adding {args.added_release}, {args.repeats} runs each")
        builds.measure_incremental_builds(args.raw_dir, args.base_releases, args.added_release, args.repeats,
                                          build_results, snapshots=snapshots)
    results["builds"] = {
        "timings": {name: timing.to_dict() for name, timing in build_results.timings.items()},
        "peak_rss_bytes": build_results.peak_rss_bytes,
    }

    with tempfile.TemporaryDirectory(prefix="hcpcs-bench-") as work:
        work_dir = Path(work)
        results["synthetic"] = {}
        scales = {"small": args.synthetic_codes // 10, "large": args.synthetic_codes}
        _progress(f"generating the synthetic workloads: {args.synthetic_releases} releases x "
                  f"{' and '.join(map(str, scales.values()))} codes")
        generate_synthetic(args.synthetic_releases, list(scales.values()), work_dir)
        for scale, codes in scales.items():
            _progress(f"synthetic workload, {args.synthetic_releases} releases x {codes} codes")
            results["synthetic"][scale] = measure_synthetic(args.synthetic_releases, codes, args.repeats, work_dir,
                                                            None)

        results["targets"] = report.evaluate_targets(results)
        context = {
            "text": release.read_bytes(release.primary_file),
            "workbook": release.read_bytes(release.cross_check_file),
            "release": release,
            "statements": statements,
        }
        results["profiles"] = profile_missed_targets(results, context, args, work_dir)

    results["load"]["end"] = load_average()
    results["elapsed_seconds"] = time.perf_counter() - started
    page = report.render(results)
    if args.no_write:
        print(page)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(page)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2, default=str))
    _progress(f"wrote {args.output.relative_to(REPO_DIR) if args.output.is_relative_to(REPO_DIR) else args.output} "
              f"and {RESULTS_FILE.relative_to(REPO_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
