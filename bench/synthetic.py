"""Synthetic release records in the `hcpcs_release_record` shape, and the history build and write measured on them.

`python -m bench.synthetic generate --releases 100 --codes 1000 10000 --out DIR` writes the
records. `python -m bench.synthetic measure --input DIR/100x10000` times the work on them and
prints one JSON object. It runs in a process of its own, so its peak memory is that work's.

Each release states `codes` codes. Between two releases, about 3% of the active codes change
a business attribute, 0.4% are discontinued (termination date set), 8% of the discontinued
ones are reactivated, and a code discontinued for four releases or more is dropped with a
chance of 25% and its place taken by a new code. Action codes are C, D, R, A and N, as CMS
uses them. The real 2019 annual file, for comparison, marks about 6% of its codes as added,
changed or discontinued in a year (four quarters).
"""

import argparse
import cProfile
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import polars as pl

from bench.measure import Timing, current_rss_bytes, peak_rss_bytes, reset_peak_rss

CHANGE_RATE = 0.03
DISCONTINUE_RATE = 0.004
REACTIVATE_RATE = 0.08
DROP_AFTER_RELEASES = 4
DROP_RATE = 0.25

_CODE_LETTERS = "ABCEGHJKLMPQRSTV"
_FIRST_RELEASE = date(2001, 1, 1)
_INITIAL_ADDED_DATE = date(1990, 1, 1)


def release_dates(count: int) -> list[date]:
    """Quarterly effective dates from January 2001: 100 releases reach October 2025."""
    return [date(_FIRST_RELEASE.year + i // 4, 1 + 3 * (i % 4), 1) for i in range(count)]


def _simulate(releases: int, codes: int, seed: int) -> dict[str, list]:
    """Walk the releases in order and return one list entry per (release, code slot) statement.

    Plain Python and `random`, so that the benchmark needs no numpy; a million statements
    take about a second.
    """
    rng = random.Random(seed)
    code_id = list(range(codes))
    version = [0] * codes
    terminated_at = [-1] * codes  # release index of the discontinuation, -1 while active
    added_at = [-1] * codes  # release index of the addition, -1 for codes older than release 0
    event_at = [-1] * codes  # release index of the latest action
    next_code = codes

    columns: dict[str, list] = {name: [] for name in ("release", "code_id", "version", "terminated_at", "added_at",
                                                      "event_at", "action_code", "slot")}
    for release in range(releases):
        action = ["N"] * codes
        for slot in range(codes if release > 0 else 0):
            if terminated_at[slot] >= 0:
                if release - terminated_at[slot] >= DROP_AFTER_RELEASES and rng.random() < DROP_RATE:
                    code_id[slot] = next_code
                    next_code += 1
                    version[slot] = 0
                    terminated_at[slot] = -1
                    added_at[slot] = release
                    event_at[slot] = release
                    action[slot] = "A"
                elif rng.random() < REACTIVATE_RATE:
                    terminated_at[slot] = -1
                    version[slot] += 1
                    event_at[slot] = release
                    action[slot] = "R"
            elif rng.random() < DISCONTINUE_RATE:
                terminated_at[slot] = release
                event_at[slot] = release
                action[slot] = "D"
            elif rng.random() < CHANGE_RATE:
                version[slot] += 1
                event_at[slot] = release
                action[slot] = "C"

        columns["release"].extend([release] * codes)
        columns["code_id"].extend(code_id)
        columns["version"].extend(version)
        columns["terminated_at"].extend(terminated_at)
        columns["added_at"].extend(added_at)
        columns["event_at"].extend(event_at)
        columns["action_code"].extend(action)
        columns["slot"].extend(range(codes))
    return columns


def _every(n: int) -> pl.Expr:
    """True for every n-th code, to give a field to a fixed share of the codes."""
    return (pl.col("code_id") % n) == 0


def generate_records(releases: int, codes: int, seed: int = 2026) -> tuple[pl.DataFrame, list[dict]]:
    """Return `releases` x `codes` release records, ordered like RELEASE_RECORD_COLUMNS, and the release summaries."""
    from hcpcs.normalize import RELEASE_RECORD_COLUMNS

    dates = release_dates(releases)
    release_ids = [effective.strftime("%Y-%m") for effective in dates]
    events = _simulate(releases, codes, seed)

    frame = pl.DataFrame(events, schema={name: pl.String if name == "action_code" else pl.Int64 for name in events})
    date_table = pl.Series("date", dates, dtype=pl.Date)
    id_table = pl.Series("release_id", release_ids, dtype=pl.String)

    def release_date(column: str, before_first: date | None) -> pl.Expr:
        index = pl.col(column)
        return pl.when(index < 0).then(pl.lit(before_first, pl.Date)).otherwise(
            pl.lit(date_table).gather(index.clip(0, None))
        )

    letter = pl.lit(pl.Series(list(_CODE_LETTERS))).gather((pl.col("code_id") // 10_000) % len(_CODE_LETTERS))
    code = pl.concat_str([letter, (pl.col("code_id") % 10_000).cast(pl.String).str.zfill(4)])
    pricing = pl.lit(pl.Series(["11", "13", "51", "57"])).gather((pl.col("code_id") + pl.col("version")) % 4)
    type_of_service = pl.lit(pl.Series(["1", "9", "1,9", "P"])).gather(pl.col("code_id") % 4)
    betos = pl.lit(pl.Series(["D1A", "O1A", "T1D", "P5C", "Z2"])).gather(pl.col("code_id") % 5)
    coverage = pl.lit(pl.Series(["C", "D", "I", "M", "S"])).gather((pl.col("code_id") // 7) % 5)
    empty = pl.lit([], pl.List(pl.String))

    records = frame.with_columns(hcpcs_code=code).select(
        release_id=pl.lit(id_table).gather(pl.col("release")),
        hcpcs_code="hcpcs_code",
        code_type=pl.lit("procedure"),
        record_id=pl.lit("3"),
        sequence_number=pl.lit(100, pl.Int32),
        long_description=pl.format(
            "Synthetic procedure {}, revision {}: supply or service as CMS would describe it in about one hundred "
            "characters",
            "hcpcs_code",
            "version",
        ),
        short_description=pl.format("Synthetic {} rev {}", "hcpcs_code", "version"),
        pricing_indicator_codes=pricing.str.split(","),
        multiple_pricing_indicator_code=pl.when(_every(3)).then(pl.lit("A")),
        coverage_issues_manual_references=pl.when(_every(13)).then(pl.lit(["60-9"])).otherwise(empty),
        carriers_manual_references=pl.when(_every(6)).then(pl.lit(["2049"])).otherwise(empty),
        statute_number=pl.when(_every(50)).then(pl.lit("1861S2F")),
        lab_certification_codes=pl.when(_every(80)).then(pl.lit(["100", "400"])).otherwise(empty),
        cross_reference_codes=pl.when(pl.col("terminated_at") >= 0).then(pl.concat_list(pl.lit("A4216"))).otherwise(
            empty
        ),
        coverage_code=coverage,
        asc_payment_group_code=pl.when(_every(10)).then(pl.lit("YY")),
        asc_payment_group_effective_date=pl.when(_every(10)).then(release_date("added_at", _INITIAL_ADDED_DATE)),
        mog_payment_group_code=pl.when(_every(17)).then(pl.lit("01")),
        mog_payment_policy_indicator=pl.when(_every(17)).then(pl.lit("A")),
        mog_effective_date=pl.when(_every(17)).then(release_date("added_at", _INITIAL_ADDED_DATE)),
        processing_note_number=pl.when(_every(9)).then(pl.format("{}", (pl.col("code_id") % 97).cast(pl.String).str.zfill(4))),
        betos_code=betos,
        type_of_service_codes=type_of_service.str.split(","),
        anesthesia_base_units=pl.when(_every(25)).then(pl.lit(3, pl.Int16)),
        code_added_date=release_date("added_at", _INITIAL_ADDED_DATE),
        action_effective_date=release_date("event_at", _INITIAL_ADDED_DATE),
        termination_date=pl.when(pl.col("terminated_at") >= 0).then(
            release_date("terminated_at", None) - pl.duration(days=1)
        ),
        action_code="action_code",
        source_file=pl.format("synthetic/{}/anweb.txt", pl.lit(id_table).gather(pl.col("release"))),
        source_line=(pl.col("slot") + 10).cast(pl.Int64),
        source_format=pl.lit("text"),
        continuation_lines=(pl.col("code_id") % 2).cast(pl.Int32),
    )
    records = records.with_columns(
        pl.col(name).cast(pl.Date) for name in ("termination_date", "asc_payment_group_effective_date", "mog_effective_date")
    ).select(RELEASE_RECORD_COLUMNS)

    summaries = [_release_summary(release_id, effective, codes) for release_id, effective in zip(release_ids, dates)]
    return records, summaries


def _release_summary(release_id: str, effective: date, codes: int) -> dict:
    """Build the summary that `hcpcs.stage.load_release` would write for a synthetic release."""
    return {
        "release_id": release_id,
        "period": effective.strftime("%Y-%m"),
        "issue": 1,
        "effective_date": effective.isoformat(),
        "location": f"synthetic-{release_id}",
        "primary_file": f"synthetic/{release_id}/anweb.txt",
        "source_format": "text",
        "cross_check_file": None,
        "processing_notes_file": None,
        "content_hash": f"synthetic-{release_id}",
        "lines_read": codes,
        "header_lines": 0,
        "records_loaded": codes,
        "continuation_lines": 0,
        "rejected_lines": 0,
        "rejected_records": 0,
        "nulled_fields": 0,
        "format_differences": 0,
        "run_id": "bench",
        "loaded_at": "2026-01-01T00:00:00+00:00",
    }


def warehouse_inputs(records: pl.DataFrame, summaries: list[dict]):
    """Return (releases frame, statements, an empty frame per side table) as `hcpcs.warehouse.assemble` builds them."""
    from hcpcs import catalog
    from hcpcs.history import release_statements
    from hcpcs.stage import StagedRelease
    from hcpcs.warehouse import release_frame

    staged = [
        StagedRelease(summary=summary, records=records.clear(), rejects=pl.DataFrame(),
                      processing_notes=pl.DataFrame(), format_differences=pl.DataFrame())
        for summary in summaries
    ]
    releases = release_frame(staged)
    statements = release_statements(records, releases)
    rejects = pl.DataFrame(schema={name: pl.Int64 if name == "line_number" else pl.String
                                   for name in catalog.REJECTED_COLUMNS})
    differences = pl.DataFrame(schema={name: pl.String for name in catalog.DIFFERENCE_COLUMNS})
    notes = pl.DataFrame(schema={name: pl.Int64 if name == "line_number" else pl.String
                                 for name in catalog.NOTE_COLUMNS})
    return releases, statements, rejects, differences, notes


def scale_folder(out_dir: Path, releases: int, codes: int) -> Path:
    return out_dir / f"{releases}x{codes}"


def generate(releases: int, codes: int, out_dir: Path) -> Path:
    """Write the records to records.parquet and the release summaries to releases.json; return their folder."""
    records, summaries = generate_records(releases, codes)
    folder = scale_folder(out_dir, releases, codes)
    folder.mkdir(parents=True, exist_ok=True)
    records.write_parquet(folder / "records.parquet")
    (folder / "releases.json").write_text(json.dumps(summaries))
    return folder


def measure(input_dir: Path, repeats: int, profile_path: Path | None) -> dict:
    """Time the history build and the warehouse write on records written by `generate`; return the results.

    The input is read from Parquet, as the warehouse asset reads the staging folder, so the
    memory held before the timed work is the input data and not what generating it left behind.
    """
    from hcpcs.history import build_code_versions, build_release_changes, release_record_table
    from hcpcs.warehouse import WarehouseTables, write_warehouse

    start = time.perf_counter()
    records = pl.read_parquet(input_dir / "records.parquet")
    summaries = json.loads((input_dir / "releases.json").read_text())
    release_table, statements, rejects, differences, notes = warehouse_inputs(records, summaries)
    records = release_record_table(records, statements)
    statements_seconds = time.perf_counter() - start

    def build_tables(versions: pl.DataFrame, changes: pl.DataFrame) -> WarehouseTables:
        return WarehouseTables(releases=release_table, records=records, versions=versions, changes=changes,
                               rejects=rejects, differences=differences, notes=notes)

    work_dir = Path(tempfile.mkdtemp(prefix="hcpcs-bench-synthetic-"))
    warehouse_path = work_dir / "hcpcs.duckdb"
    parts = {name: Timing() for name in ("versions", "changes", "write", "total")}
    part_peaks: dict[str, int] = {"versions": 0, "changes": 0, "write": 0}
    rss_before = current_rss_bytes()
    peak_reset = True
    versions = changes = None
    try:
        for _ in range(repeats):
            # The peak is reset before each part, so that each part's own peak is known.
            # The input frames stay resident throughout and are part of every peak.
            peak_reset = reset_peak_rss() and peak_reset
            start = time.perf_counter()
            versions = build_code_versions(statements)
            after_versions = time.perf_counter()
            part_peaks["versions"] = max(part_peaks["versions"], peak_rss_bytes())

            peak_reset = reset_peak_rss() and peak_reset
            changes = build_release_changes(statements)
            after_changes = time.perf_counter()
            part_peaks["changes"] = max(part_peaks["changes"], peak_rss_bytes())

            peak_reset = reset_peak_rss() and peak_reset
            write_warehouse(build_tables(versions, changes), warehouse_path)
            end = time.perf_counter()
            part_peaks["write"] = max(part_peaks["write"], peak_rss_bytes())

            parts["versions"].samples.append(after_versions - start)
            parts["changes"].samples.append(after_changes - after_versions)
            parts["write"].samples.append(end - after_changes)
            parts["total"].samples.append(end - start)

        if profile_path is not None:
            profiler = cProfile.Profile()
            profiler.enable()
            versions = build_code_versions(statements)
            changes = build_release_changes(statements)
            write_warehouse(build_tables(versions, changes), warehouse_path)
            profiler.disable()
            profiler.dump_stats(profile_path)
        warehouse_bytes = warehouse_path.stat().st_size
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    result = {
        "releases": len(summaries),
        "codes_per_release": summaries[0]["records_loaded"],
        "records": records.height,
        "distinct_codes": statements["hcpcs_code"].n_unique(),
        "versions": versions.height,
        "changes": changes.height,
        "input_bytes": records.estimated_size() + statements.estimated_size(),
        "statements_seconds": statements_seconds,
        "rss_before_bytes": rss_before,
        "peak_reset": peak_reset,
        "warehouse_bytes": warehouse_bytes,
    }
    if repeats:
        result["timings"] = {name: timing.to_dict() for name, timing in parts.items()}
        result["peak_rss_bytes"] = max(part_peaks.values())
        result["part_peak_rss_bytes"] = part_peaks
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    generate_command = commands.add_parser("generate", help="write synthetic records, one sub-folder per size")
    generate_command.add_argument("--releases", type=int, required=True, help="number of releases to generate")
    generate_command.add_argument("--codes", type=int, nargs="+", required=True,
                                  help="codes stated by every release; one workload per value")
    generate_command.add_argument("--out", type=Path, required=True,
                                  help="folder to write RELEASESxCODES/records.parquet into")
    measure_command = commands.add_parser("measure", help="time the history build and write; print JSON")
    measure_command.add_argument("--input", type=Path, required=True, help="a RELEASESxCODES folder of generate")
    measure_command.add_argument("--repeats", type=int, default=5,
                                 help="timed runs of the history build and write (0: only the profile run)")
    measure_command.add_argument("--profile", type=Path, help="also profile one run with cProfile, stats to this file")
    args = parser.parse_args(argv)

    if args.command == "measure" and args.repeats == 0 and args.profile is None:
        parser.error("--repeats 0 measures nothing unless --profile is given")
    if args.command == "generate":
        for codes in args.codes:
            generate(args.releases, codes, args.out)
    else:
        json.dump(measure(args.input, args.repeats, args.profile), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
