"""Targets checked against the measured results, and the markdown page docs/benchmarks.md written from them."""

from functools import partial

GB = 1e9  # the memory goal is in decimal gigabytes


def _median(results: dict, section: str, name: str) -> float | None:
    timing = results.get(section, {}).get("timings", {}).get(name)
    return timing["median"] if timing else None


def _synthetic_total(results: dict, scale: str) -> float | None:
    run = results.get("synthetic", {}).get(scale)
    return run["timings"]["total"]["median"] if run else None


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "not measured"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def format_bytes(count: float | None) -> str:
    if count is None:
        return "not measured"
    return f"{count / GB:.2f} GB" if count >= 0.1 * GB else f"{count / 1e6:.0f} MB"


def _ratio_target(key, target, goal_text, numerator, denominator, limit, profile, *, at_least=False, unit="×"):
    """Build the row of a target on a ratio: at most `limit` (a cost), or with `at_least` at least `limit` (a speed-up)."""
    if numerator is None or denominator is None:
        return {"key": key, "target": target, "goal": goal_text, "measured": "not measured", "met": None,
                "shortfall": "", "profile": None}
    ratio = numerator / denominator
    met = ratio >= limit if at_least else ratio <= limit
    shortfall = ""
    if not met:
        factor = limit / ratio if at_least else ratio / limit
        shown = f"{factor:.2f}" if factor < 1.1 else f"{factor:.1f}"
        shortfall = f"missed by {shown}×: our side must get {shown}× faster"
    return {"key": key, "target": target, "goal": goal_text, "measured": f"{ratio:.1f}{unit}", "met": met,
            "shortfall": shortfall, "profile": profile}


def _limit_target(key, target, goal_text, value, limit, profile, formatter):
    if value is None:
        return {"key": key, "target": target, "goal": goal_text, "measured": "not measured", "met": None,
                "shortfall": "", "profile": None}
    met = value <= limit
    shortfall = "" if met else f"missed by {value / limit:.1f}× ({formatter(value - limit)} over)"
    return {"key": key, "target": target, "goal": goal_text, "measured": formatter(value), "met": met,
            "shortfall": shortfall, "profile": profile}


def evaluate_targets(results: dict) -> list[dict]:
    """Check every target against the medians; each row names the profile that explains a miss."""
    stage = partial(_median, results, "stages")
    build = partial(_median, results, "builds")
    large = results.get("synthetic", {}).get("large")
    return [
        _ratio_target("text_vs_floor", "Text release parsed and normalized vs bare polars",
                      "≤ 3× the floor", stage("text_read_normalize"), stage("text_floor"), 3, "text_read_normalize"),
        _ratio_target("workbook_vs_floor", "Workbook read vs bare fastexcel", "≤ 1.5× the floor",
                      stage("read_workbook"), stage("workbook_floor"), 1.5, "read_workbook"),
        _ratio_target("text_vs_pandas", "Text read vs pandas.read_fwf", "≥ 10× faster",
                      stage("pandas_read_fwf"), stage("read_text"), 10, "read_text", at_least=True),
        _ratio_target("workbook_vs_openpyxl", "Workbook read vs openpyxl", "≥ 10× faster",
                      stage("openpyxl_read"), stage("read_workbook"), 10, "read_workbook", at_least=True),
        _ratio_target("history_vs_pandas", "History build vs per-release merge in pandas", "≥ 10× faster",
                      stage("pandas_release_by_release"), stage("history_versions"), 10, "history_versions",
                      at_least=True),
        _ratio_target("history_vs_duckdb", "History build vs per-release merge in DuckDB SQL", "≥ 10× faster",
                      stage("duckdb_release_by_release"), stage("history_versions"), 10, "history_versions",
                      at_least=True),
        _limit_target("full_build", "Full build of all shared releases through Dagster", "≤ 20 s wall",
                      build("dagster_full_build"), 20.0, "dagster_full_build", format_seconds),
        _limit_target("incremental_build", "One release added to a built folder, through Dagster", "≤ 5 s wall",
                      build("dagster_incremental_build"), 5.0, "dagster_incremental_build", format_seconds),
        _limit_target("synthetic_time", "Synthetic history build + write (versions, changes, DuckDB file)",
                      "≤ 5 s", _synthetic_total(results, "large"), 5.0, "synthetic", format_seconds),
        _limit_target("synthetic_memory", "Peak memory of that process during the history build + write",
                      "< 1.5 GB", large["peak_rss_bytes"] if large else None, 1.5 * GB, "synthetic_memory",
                      format_bytes),
        _limit_target("synthetic_growth", "Time at 10× the data vs at 1×", "≤ 12×",
                      _growth(results), 12.0, "synthetic_growth", lambda value: f"{value:.1f}×"),
    ]


def _growth(results: dict) -> float | None:
    large = _synthetic_total(results, "large")
    small = _synthetic_total(results, "small")
    return large / small if large and small else None


# ---- page -----------------------------------------------------------------------------------

_STAGE_ROWS = (
    ("read_text", "`read_anweb_text`", "decode, split lines, slice 48 fields, join continuation records"),
    ("read_workbook", "`read_anweb_workbook`", "fastexcel load, header check, cell clean-up, continuation rows"),
    ("validate", "`validate_records`", "pandera `RawRecord` (lazy) and the one-record-per-code rule, on the text records"),
    ("normalize", "`normalize_records`", "types, dates, ordered lists, collapsed whitespace"),
    ("text_read_normalize", "text: read + normalize", "`read_anweb_text` then `normalize_records` (the target's measure)"),
    ("text_read_validate_normalize", "text: read + validate + normalize", "what `load_release` does with the text file"),
    ("workbook_read_normalize", "workbook: read + normalize", "`read_anweb_workbook` then `normalize_records`"),
    ("history_versions", "`build_code_versions`", "dim_hcpcs_code from the statements of all releases loaded"),
    ("history_changes", "`build_release_changes`", "hcpcs_release_changes from the same statements"),
    ("write", "`write_warehouse`", "new DuckDB file: all tables, bridges, views, comments, fsync, rename"),
)

_FLOOR_ROWS = (
    ("text_floor", "bare polars, text", "`text_as_utf8`, `pl.read_lines`, 48 × `str.slice`"),
    ("workbook_floor", "bare fastexcel, workbook", "`pl.from_arrow(read_excel(...).load_sheet(0, dtypes='string', eager=True))`"),
    ("pandas_read_fwf", "pandas `read_fwf`, text", "colspecs from `hcpcs.layout.FIELDS`, first records, descriptions joined"),
    ("openpyxl_read", "openpyxl, workbook", "`read_only=True`, one `iter_rows` pass, dates as YYYYMMDD, continuation rows joined"),
    ("pandas_release_by_release", "per-release SCD2 merge, pandas", "close changed, extend unchanged, open new; one release at a time"),
    ("duckdb_release_by_release", "per-release SCD2 merge, DuckDB SQL", "UPDATE ... FROM, UPDATE, INSERT per release, bound parameters"),
)


def _timing_row(label: str, description: str, timing: dict | None) -> str:
    if timing is None:
        return f"| {label} | {description} | not measured | | |"
    spread = f"{format_seconds(timing['min'])} – {format_seconds(timing['max'])}"
    return f"| {label} | {description} | {format_seconds(timing['median'])} | {spread} | {len(timing['samples'])} |"


def render(results: dict) -> str:
    """Build the whole markdown page from the results."""
    lines: list[str] = []
    add = lines.append
    settings = results["settings"]
    machine = results["machine"]
    facts = results["stages"]["facts"]

    add("# Benchmarks")
    add("")
    add("Wall-clock timings of the pipeline on the real CMS releases and on a synthetic workload, next to the")
    add("fastest bare-library floor and to the code a user would commonly write instead. Every number on this")
    add("page comes from one run of `bench/run.py`.")
    add("")
    add("To measure again, run `make bench` (about 4 minutes). It installs the bench extras (pandas and")
    add("openpyxl for the baselines), sets the allocator setting that `make run` uses, reads the releases in")
    add("`../shared/data/hcpcs/raw` (`--raw-dir` for another folder; `HCPCS_RAW_DIR` is not read), and")
    add("rewrites this page and `bench/results/latest.json`. For other options run")
    add("`.venv/bin/python bench/run.py --help`: `--quick` is a smoke run whose numbers are not")
    add("comparable, and `--no-write` prints the page instead of writing it.")
    add("")
    add(f"- Measured: {machine['date']}, commit `{machine['commit'] or 'unknown'}`"
        + (" with local changes to the product code" if machine["product_code_modified"] else ""))
    add(f"- Command: `{results['command']}`")
    allocator = settings.get("allocator")
    add(
        f"- polars allocator: whole builds and the synthetic rebuild run in child processes with "
        f"`_RJEM_MALLOC_CONF={allocator}`, as `make run` runs refreshes; in-process stage timings use "
        "jemalloc's defaults"
        if allocator
        else "- polars allocator: jemalloc defaults everywhere (`make bench` would set `_RJEM_MALLOC_CONF` for "
        "whole builds and the synthetic rebuild, as `make run` does)"
    )
    warmup = " (after one untimed warm-up run)" if settings["warmup"] else ""
    add(f"- Medians of {settings['stage_repeats']} runs for in-process stages{warmup} and "
        f"of {settings['repeats']} runs for whole builds and the synthetic workload; the whole benchmark took "
        f"{results['elapsed_seconds'] / 60:.1f} minutes.")
    if settings["quick"]:
        add("- **Quick run (`--quick`)**: one run each, fewer releases and a small synthetic workload, so the "
            "numbers only show that the script works and are not comparable with the targets.")
    load = results["load"]
    add(f"- Load average (1, 5, 15 min) at start {_load_text(load['start'])}, at end {_load_text(load['end'])}. "
        "The machine may be shared with other work; a load above the number of cores slows every line below.")
    add("")

    add("## Machine")
    add("")
    cpu = machine["cpu"]
    add(f"- CPU: {cpu.get('model name', 'unknown')}, {cpu.get('logical processors')} logical processors "
        f"({machine['cpus_usable']} usable by this process), {cpu.get('cpu MHz', '?')} MHz, "
        f"cache {cpu.get('cache size', 'unknown')} (from /proc/cpuinfo)")
    add(f"- Memory: {machine['memory']} (MemTotal in /proc/meminfo)")
    add(f"- OS: {machine['os']}, kernel {machine['kernel']}")
    add(f"- Python: {machine['python']}; polars thread pool: {machine['polars_threads']} threads")
    add("- Libraries: " + ", ".join(f"{name} {version}" for name, version in machine["libraries"].items()))
    add("")

    add("## Targets")
    add("")
    add("| Target | Goal | Measured | Met | Shortfall |")
    add("|---|---|---|---|---|")
    for target in results["targets"]:
        met = {True: "met", False: "**missed**", None: "not measured"}[target["met"]]
        add(f"| {target['target']} | {target['goal']} | {target['measured']} | {met} | {target['shortfall']} |")
    add("")
    add("Ratios compare medians. \"Text release parsed and normalized\" is `read_anweb_text` followed by "
        "`normalize_records`; with `validate_records` between them (what a load really runs) the ratio is "
        f"{_ratio_text(results, 'text_read_validate_normalize', 'text_floor')}. The workbook target compares "
        "`read_anweb_workbook` alone with fastexcel; with `normalize_records` after it the ratio is "
        f"{_ratio_text(results, 'workbook_read_normalize', 'workbook_floor')}. The synthetic time counts "
        "`build_code_versions`, `build_release_changes` and `write_warehouse`, the three steps a warehouse "
        "rebuild runs on the statements; the breakdown is in the synthetic table below. Counting only "
        f"`build_code_versions` and `write_warehouse`, it is {_versions_and_write(results)}.")
    add("")

    _render_profiles(results, add)
    _render_stages(results, add)
    _render_floors(results, add)
    _render_builds(results, add)
    _render_synthetic(results, add)

    add("## Method")
    add("")
    add(f"- Stages run in the `bench/run.py` process on `{facts.get('text_file')}` "
        f"({facts.get('text_bytes', 0) / 1e6:.1f} MB, {facts.get('text_lines')} lines, "
        f"{facts.get('text_records')} codes) and `{facts.get('workbook_file')}` "
        f"({facts.get('workbook_bytes', 0) / 1e6:.1f} MB, {facts.get('workbook_rows')} rows), read into memory "
        "before timing, so file system reads are not timed. `validate_records` and `normalize_records` take "
        "the text file's records.")
    add(f"- The history build and the write use {facts.get('history_releases')} releases of the raw folder "
        f"loaded with `load_release` ({facts.get('history_statements')} statements, "
        f"{facts.get('history_versions')} versions, {facts.get('history_changes')} changes; the DuckDB file is "
        f"{facts.get('warehouse_bytes', 0) / 1e6:.0f} MB).")
    add("- Each baseline returns the same rows as the project function it is compared with. The benchmark "
        "counts the differences: for the readers, codes missing on either side or with a different long "
        "description; for the merges, versions that differ in code, number, first and last release or release "
        "count. Found: "
        + ", ".join(f"{name.removesuffix('_mismatches')} {count}" for name, count in facts.items()
                     if name.endswith("_mismatches"))
        + ". The merges give each version the release date as valid_from, so only the dates differ from "
        "`build_code_versions`, which takes CMS's action effective dates.")
    add("- Builds run `python -m pipelines.build` (Dagster) and `python -m bench.plain_build` (the same "
        "project calls, no Dagster) as child processes, each with a fresh DAGSTER_HOME, staging folder and "
        "warehouse; the wall time includes starting Python and importing the libraries. The raw folder holds "
        "symbolic links to the shared release folders. The incremental refresh copies a folder built once from "
        f"all releases but `{settings['added_release']}`, adds that release, and builds again.")
    add("- The synthetic workload runs in a child process (`python -m bench.synthetic`): the records are "
        "generated and written to Parquet by one child, and read by the measuring child, so memory left over "
        "from generating them is not counted. Peak memory is VmHWM from /proc/self/status, reset through "
        "/proc/self/clear_refs before each step; it includes the input frames held throughout.")
    add("- Profiles are cProfile runs made after the timed runs, only for missed targets. A function's time is "
        "its own time plus the library calls it makes, without the project functions it calls.")
    add("")
    return "\n".join(lines)


def _versions_and_write(results: dict) -> str:
    large = results.get("synthetic", {}).get("large")
    if not large:
        return "not measured"
    return format_seconds(large["timings"]["versions"]["median"] + large["timings"]["write"]["median"])


def _load_text(load: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in load)


def _ratio_text(results: dict, numerator: str, denominator: str) -> str:
    top = _median(results, "stages", numerator)
    bottom = _median(results, "stages", denominator)
    return f"{top / bottom:.1f}×" if top and bottom else "not measured"


def _render_profiles(results: dict, add) -> None:
    profiles = results.get("profiles", {})
    missed = [target for target in results["targets"] if target["met"] is False]
    if not missed:
        return
    add("## Where the missed targets spend their time")
    add("")
    shown = set()
    for target in missed:
        key = target["profile"]
        if key in shown:
            add(f"- **{target['target']}**: see the profile above ({key}).")
            add("")
            continue
        shown.add(key)
        add(f"**{target['target']}** ({target['measured']}, goal {target['goal']}):")
        add("")
        bound = _floor_bound(results, target["key"])
        if bound:
            add(f"- {bound}")
        for line in profiles.get(key, ["profile not run"]):
            # Lines indented by two spaces belong under the line before them.
            add(f"  - {line.strip()}" if line.startswith("  ") else f"- {line}")
        add("")


# Speed-up targets over a common baseline, with the floor that bounds them: (baseline, floor, ours).
_FLOOR_BOUNDS = {
    "text_vs_pandas": ("pandas_read_fwf", "text_floor", "read_text"),
    "workbook_vs_openpyxl": ("openpyxl_read", "workbook_floor", "read_workbook"),
}


def _floor_bound(results: dict, key: str) -> str | None:
    """Describe how far the floor itself is ahead of the baseline, and what that leaves the project function."""
    if key not in _FLOOR_BOUNDS:
        return None
    baseline_name, floor_name, ours_name = _FLOOR_BOUNDS[key]
    timings = results["stages"]["timings"]
    if any(name not in timings for name in _FLOOR_BOUNDS[key]):
        return None
    baseline, floor, ours = (timings[name]["median"] for name in _FLOOR_BOUNDS[key])
    return (
        f"Bound: the floor (`{floor_name}`) is itself {baseline / floor:.1f}× faster than `{baseline_name}`, "
        f"so a 10× speed-up leaves `{ours_name}` at most {baseline / 10 / floor:.2f}× the floor's time "
        f"({format_seconds(baseline / 10)}); it takes {ours / floor:.2f}× ({format_seconds(ours)})."
    )


def _render_stages(results: dict, add) -> None:
    timings = results["stages"]["timings"]
    add(f"## Stages on one real release ({results['settings']['release']})")
    add("")
    add("| Stage | What is timed | Median | Min – max | Runs |")
    add("|---|---|---|---|---|")
    for name, label, description in _STAGE_ROWS:
        add(_timing_row(label, description, timings.get(name)))
    add("")


def _render_floors(results: dict, add) -> None:
    timings = results["stages"]["timings"]
    skipped = results["stages"]["skipped"]
    add("## Floors and common baselines")
    add("")
    add("| Approach | What is timed | Median | Min – max | Runs |")
    add("|---|---|---|---|---|")
    for name, label, description in _FLOOR_ROWS:
        if name in skipped:
            add(f"| {label} | {description} | skipped: {skipped[name]} | | |")
        else:
            add(_timing_row(label, description, timings.get(name)))
    add("")
    comparisons = (
        ("text_read_normalize", "text_floor", "text read + normalize / polars floor"),
        ("read_workbook", "workbook_floor", "`read_anweb_workbook` / fastexcel floor"),
        ("pandas_read_fwf", "read_text", "pandas `read_fwf` / `read_anweb_text`"),
        ("openpyxl_read", "read_workbook", "openpyxl / `read_anweb_workbook`"),
        ("pandas_release_by_release", "history_versions", "pandas merge / `build_code_versions`"),
        ("duckdb_release_by_release", "history_versions", "DuckDB SQL merge / `build_code_versions`"),
    )
    add("| Ratio of medians | Value |")
    add("|---|---|")
    for numerator, denominator, label in comparisons:
        add(f"| {label} | {_ratio_text(results, numerator, denominator)} |")
    add("")


def _render_builds(results: dict, add) -> None:
    builds = results["builds"]
    timings = builds["timings"]
    peaks = builds["peak_rss_bytes"]
    settings = results["settings"]

    count = len(settings["build_releases"])
    add(f"## Builds ({count} release{'s' if count > 1 else ''}; the incremental build adds "
        f"`{settings['added_release']}`)")
    add("")
    add("| Build | Median | Min – max | Runs | Peak RSS |")
    add("|---|---|---|---|---|")
    for name, label in (
        ("dagster_full_build", "full, `python -m pipelines.build` (Dagster)"),
        ("plain_full_build", "full, plain function calls"),
        ("dagster_incremental_build", "one release added, Dagster"),
        ("plain_incremental_build", "one release added, plain function calls"),
    ):
        timing = timings.get(name)
        if timing is None:
            add(f"| {label} | not measured | | | |")
            continue
        add(f"| {label} | {format_seconds(timing['median'])} | {format_seconds(timing['min'])} – "
            f"{format_seconds(timing['max'])} | {len(timing['samples'])} | {format_bytes(peaks.get(name))} |")
    add("")

    for kind in ("full", "incremental"):
        dagster = _median(results, "builds", f"dagster_{kind}_build")
        plain = _median(results, "builds", f"plain_{kind}_build")
        if dagster and plain:
            add(f"- Dagster's overhead, {kind} build: {format_seconds(dagster - plain)} "
                f"({(dagster - plain) / dagster:.0%} of the Dagster build's wall time).")
    add("")


def _render_synthetic(results: dict, add) -> None:
    synthetic = results.get("synthetic", {})
    if not synthetic:
        return

    add("## Synthetic history workload")
    add("")
    add("Statements are generated in the `hcpcs_release_record` shape by `bench/synthetic.py`, for quarterly "
        "releases from 2001. Between two releases about 3% of the active codes change and 0.4% are discontinued. "
        "8% of the discontinued ones come back, and codes discontinued for a year may be dropped and replaced by "
        "new ones.")
    add("")
    add("| Releases × codes | Records | Versions | Changes | `build_code_versions` | `build_release_changes` "
        "| `write_warehouse` | Total | Peak RSS (input resident) |")
    add("|---|---|---|---|---|---|---|---|---|")
    for scale in ("small", "large"):
        run = synthetic.get(scale)
        if run is None:
            continue
        timings = run["timings"]
        add(f"| {run['releases']} × {run['codes_per_release']:,} | {run['records']:,} | {run['versions']:,} | "
            f"{run['changes']:,} | {format_seconds(timings['versions']['median'])} | "
            f"{format_seconds(timings['changes']['median'])} | {format_seconds(timings['write']['median'])} | "
            f"{format_seconds(timings['total']['median'])} | {format_bytes(run['peak_rss_bytes'])} "
            f"({format_bytes(run['rss_before_bytes'])}) |")
    add("")

    small = synthetic.get("small")
    large = synthetic.get("large")
    if small and large:
        growth = [
            f"{name} {large['timings'][name]['median'] / small['timings'][name]['median']:.1f}×"
            for name in ("versions", "changes", "write", "total")
        ]
        add("- Growth from the small to the large workload (10× the records): " + ", ".join(growth) + ".")
        peaks = large.get("part_peak_rss_bytes", {})
        if peaks:
            add("- Peak RSS by step at the large size: "
                + ", ".join(f"{name} {format_bytes(value)}" for name, value in peaks.items())
                + f"; the input frames are estimated at {format_bytes(large['input_bytes'])}.")
        add("")
