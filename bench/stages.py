"""Stage timings on real CMS releases, next to the bare-library floor and the common baseline for the same work."""

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import fastexcel
import polars as pl

from bench import baselines
from bench.measure import Timing, time_call
from hcpcs import layout
from hcpcs.history import build_code_versions, build_release_changes, release_statements
from hcpcs.normalize import normalize_records, validate_records
from hcpcs.readers import read_anweb_text, read_anweb_workbook, text_as_utf8
from hcpcs.releases import Release, discover_releases
from hcpcs.stage import StagedRelease, load_release
from hcpcs.warehouse import assemble, write_warehouse


@dataclass
class StageResults:
    """Timings by name, with the facts the report prints next to them."""

    timings: dict[str, Timing] = field(default_factory=dict)
    facts: dict[str, object] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def find_release(raw_dir: Path, folder_name: str) -> Release:
    for release in discover_releases(raw_dir):
        if release.location.name == folder_name:
            return release
    raise SystemExit(f"release folder {folder_name} not found in {raw_dir}; pass --release with a folder name there")


def text_floor(data: bytes) -> pl.DataFrame:
    """Bare polars: the file's lines, each cut into the 48 CMS fields with `str.slice`, nothing else.

    polars reads UTF-8 only, so the floor rewrites the Windows-1252 bytes with `text_as_utf8`,
    as the reader does. `data.decode("cp1252").encode()` costs about 5 ms more on the 2019 file.
    """
    lines = pl.read_lines(text_as_utf8(data, "floor.txt"))
    return lines.select(
        pl.col("line").str.slice(field.start, field.end - field.start).alias(field.name) for field in layout.FIELDS
    )


def workbook_floor(data: bytes) -> pl.DataFrame:
    """Bare fastexcel: the first sheet as text cells, loaded eagerly as Arrow and taken by polars.

    The eager load is the fastest that fastexcel offers. `load_sheet(...).to_polars()` takes
    about 7 ms more on the 2019 workbook.
    """
    sheet = fastexcel.read_excel(data).load_sheet(0, header_row=None, dtypes="string", eager=True)
    return pl.from_arrow(sheet)


def measure_release_stages(release: Release, repeats: int, warmup: int, results: StageResults) -> None:
    """Time each stage of one release with both formats, the floors, and the reader baselines."""
    if release.cross_check_file is None or not release.primary_file.lower().endswith(".txt"):
        raise SystemExit(f"release {release.location.name} needs both the .txt file and the workbook")
    text_name = release.display_name(release.primary_file)
    workbook_name = release.display_name(release.cross_check_file)
    text = release.read_bytes(release.primary_file)
    workbook = release.read_bytes(release.cross_check_file)
    results.facts.update(text_file=text_name, text_bytes=len(text), workbook_file=workbook_name,
                         workbook_bytes=len(workbook))

    timings = results.timings
    timings["read_text"], text_result = time_call(lambda: read_anweb_text(text, text_name), repeats, warmup)
    timings["read_workbook"], workbook_result = time_call(
        lambda: read_anweb_workbook(workbook, workbook_name), repeats, warmup
    )
    timings["validate"], (valid, rejects) = time_call(lambda: validate_records(text_result), repeats, warmup)
    timings["normalize"], records = time_call(
        lambda: normalize_records(valid, release.release_id, text_name, "text"), repeats, warmup
    )
    timings["text_read_normalize"], _ = time_call(
        lambda: normalize_records(read_anweb_text(text, text_name).records, release.release_id, text_name, "text"),
        repeats,
        warmup,
    )
    timings["text_read_validate_normalize"], _ = time_call(
        lambda: _read_validate_normalize(read_anweb_text(text, text_name), release.release_id), repeats, warmup
    )
    timings["workbook_read_normalize"], _ = time_call(
        lambda: normalize_records(
            read_anweb_workbook(workbook, workbook_name).records, release.release_id, workbook_name, "workbook"
        ),
        repeats,
        warmup,
    )
    timings["text_floor"], floor_frame = time_call(lambda: text_floor(text), repeats, warmup)
    timings["workbook_floor"], _ = time_call(lambda: workbook_floor(workbook), repeats, warmup)
    results.facts.update(
        text_lines=text_result.lines_read,
        text_records=text_result.records.height,
        workbook_rows=workbook_result.lines_read,
        workbook_records=workbook_result.records.height,
        valid_records=valid.height,
        rejects=rejects.height,
        normalized_records=records.height,
        floor_rows=floor_frame.height,
    )

    missing = {name: _missing_reason(name) for name in ("pandas", "openpyxl")}
    if missing["pandas"]:
        results.skipped["pandas_read_fwf"] = missing["pandas"]
    else:
        timings["pandas_read_fwf"], fwf_records = time_call(
            lambda: baselines.pandas_text_records(text), repeats, warmup
        )
        results.facts["pandas_read_fwf_mismatches"] = baselines.record_mismatches(
            text_result.records, fwf_records["hcpc"].tolist(), fwf_records["long_description"].tolist()
        )
    if missing["openpyxl"]:
        results.skipped["openpyxl_read"] = missing["openpyxl"]
    else:
        timings["openpyxl_read"], openpyxl_records = time_call(
            lambda: baselines.openpyxl_workbook_records(workbook), repeats, warmup
        )
        results.facts["openpyxl_read_mismatches"] = baselines.record_mismatches(
            workbook_result.records,
            [record["hcpc"] for record in openpyxl_records],
            [record["long_description"] for record in openpyxl_records],
        )


def _missing_reason(module: str) -> str | None:
    """Why a baseline cannot run, or None when `module` imports."""
    try:
        __import__(module)
    except ImportError:
        return f"{module} is not installed: install the bench extras with `pip install -e '.[bench]'`"
    return None


def _read_validate_normalize(result, release_id: str) -> pl.DataFrame:
    valid, _ = validate_records(result)
    return normalize_records(valid, release_id, result.source_file, result.source_format)


def load_all_releases(raw_dir: Path, names: list[str] | None) -> list[StagedRelease]:
    """Load every release (or the named release folders) the way the release asset does, untimed."""
    releases = discover_releases(raw_dir)
    if names is not None:
        releases = [release for release in releases if release.location.name in names]
    return [load_release(release, "bench") for release in releases]


def measure_history_and_write(
    staged: list[StagedRelease], repeats: int, warmup: int, results: StageResults
) -> pl.DataFrame:
    """Time the history build and the warehouse write on the real releases, and the per-release merge baselines.

    Returns the statements the history build ran on.
    """
    tables, problems = assemble(staged)
    if problems:
        raise SystemExit("the real releases fail the code-count check: " + " ".join(map(str, problems)))
    statements = release_statements(tables.records, tables.releases)
    results.facts.update(history_releases=len(staged), history_statements=statements.height)

    timings = results.timings
    timings["history_versions"], versions = time_call(lambda: build_code_versions(statements), repeats, warmup)
    timings["history_changes"], changes = time_call(lambda: build_release_changes(statements), repeats, warmup)
    results.facts.update(history_versions=versions.height, history_changes=changes.height)

    work_dir = Path(tempfile.mkdtemp(prefix="hcpcs-bench-write-"))
    try:
        warehouse_path = work_dir / "hcpcs.duckdb"
        timings["write"], _ = time_call(lambda: write_warehouse(tables, warehouse_path), repeats, warmup)
        results.facts["warehouse_bytes"] = warehouse_path.stat().st_size
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    per_release = baselines.split_releases(statements)
    timings["duckdb_release_by_release"], duckdb_versions = time_call(
        lambda: baselines.duckdb_release_by_release(per_release), repeats, warmup
    )
    results.facts["duckdb_release_by_release_mismatches"] = baselines.version_mismatches(versions, duckdb_versions)
    if _missing_reason("pandas"):
        results.skipped["pandas_release_by_release"] = _missing_reason("pandas")
        return statements
    pandas_releases = baselines.pandas_inputs(per_release)
    timings["pandas_release_by_release"], pandas_versions = time_call(
        lambda: baselines.pandas_release_by_release(pandas_releases), repeats, warmup
    )
    results.facts["pandas_release_by_release_mismatches"] = baselines.version_mismatches(versions, pandas_versions)
    return statements
