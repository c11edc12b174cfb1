"""Read, validate and normalize one release, and keep the result as Parquet files in a staging folder.

The staging folder holds the last good load of every release. The warehouse is rebuilt from
it, so a release whose file turns bad later keeps its earlier data instead of losing it.
"""

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl

from hcpcs.errors import ReleaseFileError
from hcpcs.locking import file_lock
from hcpcs.lookups import parse_processing_notes
from hcpcs.normalize import FIELD_NULLED, RECORD_REJECTED, normalize_records, validate_records
from hcpcs.readers import ReadResult, decode_text, read_anweb_text, read_anweb_workbook
from hcpcs.releases import Release


@dataclass
class StagedRelease:
    """One release as loaded: its records, rejections, processing notes and line accounting."""

    summary: dict
    records: pl.DataFrame
    rejects: pl.DataFrame
    processing_notes: pl.DataFrame
    format_differences: pl.DataFrame

    @property
    def release_id(self) -> str:
        return self.summary["release_id"]


def read_data_file(release: Release, name: str) -> ReadResult:
    data = release.read_bytes(name)
    display = release.display_name(name)
    if name.lower().endswith(".txt"):
        return read_anweb_text(data, display)
    return read_anweb_workbook(data, display)


def load_release(release: Release, run_id: str) -> StagedRelease:
    """Read the release's ANWEB data, reject bad records, normalize the rest, and cross-check the other format."""
    result = read_data_file(release, release.primary_file)
    if result.records.is_empty():
        raise ReleaseFileError(
            result.source_file,
            "the file holds no first record (record id 3 or 7), so the release would have zero codes",
            "Download the file again from CMS; a release always lists its codes.",
        )
    valid, rejects = validate_records(result)
    if valid.is_empty():
        first = "; ".join(
            f"line {row['line_number']}, {row['field']} {row['value']!r}: {row['rule']}"
            for row in rejects.head(3).iter_rows(named=True)
        )
        raise ReleaseFileError(
            result.source_file,
            f"every one of its {result.records.height} records was rejected (first rejections: {first})",
            "Check that this is a CMS ANWEB file of the documented layout.",
        )
    records = normalize_records(valid, release.release_id, result.source_file, result.source_format)

    rejected_lines = _rejected_line_count(result, rejects)
    rejects = rejects.with_columns(
        release_id=pl.lit(release.release_id),
        source_file=pl.lit(result.source_file),
        run_id=pl.lit(run_id),
    )

    differences = _empty_differences()
    if release.cross_check_file:
        other = read_data_file(release, release.cross_check_file)
        check_same_codes(result, other)
        differences = cross_check(records, other, release)

    notes = _empty_notes()
    if release.processing_notes_file:
        notes_file = release.display_name(release.processing_notes_file)
        text = decode_text(release.read_bytes(release.processing_notes_file), notes_file)
        try:
            notes = parse_processing_notes(text, notes_file)
        except ValueError as error:
            raise ReleaseFileError(
                notes_file,
                f"the processing notes cannot be parsed ({error})",
                "Download the release again from CMS, or remove the damaged proc_notes file to load the "
                "release without its notes.",
            ) from error

    summary = {
        "release_id": release.release_id,
        "period": release.period,
        "issue": release.issue,
        "effective_date": release.effective_date.isoformat(),
        "location": release.location.name,
        "primary_file": result.source_file,
        "source_format": result.source_format,
        "cross_check_file": release.display_name(release.cross_check_file) if release.cross_check_file else None,
        "processing_notes_file": release.display_name(release.processing_notes_file)
        if release.processing_notes_file
        else None,
        "content_hash": release.content_hash(),
        "lines_read": result.lines_read,
        "header_lines": result.header_lines,
        "records_loaded": records.height,
        "continuation_lines": int(records["continuation_lines"].sum()),
        "rejected_lines": rejected_lines,
        "rejected_records": rejects.filter(pl.col("outcome") == RECORD_REJECTED)["line_number"].n_unique(),
        "nulled_fields": rejects.filter(pl.col("outcome") == FIELD_NULLED).height,
        "format_differences": differences.height,
        "run_id": run_id,
        "loaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return StagedRelease(summary, records, rejects, notes, differences)


def _rejected_line_count(result: ReadResult, rejects: pl.DataFrame) -> int:
    """Lines of rejected records: their first line and the continuation lines under it, plus loose lines."""
    first_lines = result.records.select("line_number", "continuation_lines")
    rejected = rejects.filter(pl.col("outcome") == RECORD_REJECTED).select("line_number").unique()
    rejected_first = rejected.join(first_lines, on="line_number", how="inner")
    loose = rejected.height - rejected_first.height
    return loose + rejected_first.height + int(rejected_first["continuation_lines"].sum())


def _empty_differences() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"hcpcs_code": pl.String, "field": pl.String, "primary_value": pl.String, "cross_check_value": pl.String}
    )


def _empty_notes() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "processing_note_number": pl.String,
            "note_text": pl.String,
            "source_file": pl.String,
            "line_number": pl.Int64,
        }
    )


def check_same_codes(primary: ReadResult, other: ReadResult) -> None:
    """Raise when the two formats of a release list different codes, which means one file is cut or wrong.

    CMS's text file and workbook of one release list the same codes in all of 2016-2020. A
    text file cut at a line boundary passes every other check but loses codes here.
    """
    primary_codes = set(primary.records["hcpc"].to_list())
    other_codes = set(other.records["hcpc"].to_list())
    if primary_codes == other_codes:
        return
    only_primary = sorted(primary_codes - other_codes)
    only_other = sorted(other_codes - primary_codes)
    raise ReleaseFileError(
        primary.source_file,
        f"lists {len(primary_codes)} codes where {other.source_file} lists {len(other_codes)}: "
        f"{len(only_other)} codes only in the {other.source_format} (first: {', '.join(only_other[:5]) or 'none'}), "
        f"{len(only_primary)} only in the {primary.source_format} (first: {', '.join(only_primary[:5]) or 'none'})",
        "Download the release again from CMS; one of the files is cut short or belongs to another release. "
        "To load one format alone, move the other file out of the release folder.",
    )


def cross_check(records: pl.DataFrame, other: ReadResult, release: Release) -> pl.DataFrame:
    """Compare the loaded records field by field with the release's file in the other format.

    Long descriptions are compared with whitespace collapsed, because the text file wraps them
    at 80 characters and the workbook does not. Returns one row per code and differing field.
    """
    valid, _ = validate_records(other)
    other_records = normalize_records(valid, release.release_id, other.source_file, other.source_format)
    left = _long_form(records, "primary_value")
    right = _long_form(other_records, "cross_check_value")
    joined = left.join(right, on=["hcpcs_code", "field"], how="full", coalesce=True)
    return joined.filter(pl.col("primary_value").ne_missing(pl.col("cross_check_value"))).sort("hcpcs_code", "field")


# Lineage and layout details that legitimately differ between the two formats.
_NOT_CROSS_CHECKED = ("release_id", "source_file", "source_line", "source_format", "continuation_lines")


def _long_form(frame: pl.DataFrame, value_name: str) -> pl.DataFrame:
    """Reshape records to one row per code and field, every value as text, descriptions with whitespace collapsed."""
    columns = []
    for name, dtype in frame.schema.items():
        if name in _NOT_CROSS_CHECKED or name == "hcpcs_code":
            continue
        if isinstance(dtype, pl.List):
            columns.append(pl.col(name).list.join("|").alias(name))
        elif dtype == pl.String:
            columns.append(pl.col(name).str.replace_all(r"\s+", " ").str.strip_chars().alias(name))
        else:
            columns.append(pl.col(name).cast(pl.String).alias(name))
    return frame.select("hcpcs_code", *columns).unpivot(
        index="hcpcs_code", variable_name="field", value_name=value_name
    )


_TABLES = ("records", "rejects", "processing_notes", "format_differences")


STAGING_LOCK_TIMEOUT_SECONDS = 600.0


def write_staged(staged: StagedRelease, staging_dir: Path, lock_timeout_seconds: float = STAGING_LOCK_TIMEOUT_SECONDS) -> Path:
    """Write one release's staged files, replacing its earlier ones only once all are written.

    A lock per release keeps two runs from swapping the same folder at once. The old folder
    is renamed aside before the new one takes its place, and `_restore_retired` puts it back when
    a process was killed between the two renames.
    """
    staging_dir.mkdir(parents=True, exist_ok=True)
    target = staging_dir / staged.release_id
    work = Path(tempfile.mkdtemp(prefix=f".{staged.release_id}-", dir=staging_dir))
    try:
        for table in _TABLES:
            getattr(staged, table).write_parquet(work / f"{table}.parquet")
        (work / "summary.json").write_text(json.dumps(staged.summary, indent=2, sort_keys=True))
        lock_path = staging_dir / f".{staged.release_id}.lock"
        with file_lock(lock_path, lock_timeout_seconds, f"staged release {staged.release_id}"):
            _restore_retired(staging_dir, staged.release_id)
            if target.exists():
                retired = staging_dir / f".{staged.release_id}-retired-{os.getpid()}"
                target.rename(retired)
                work.rename(target)
                shutil.rmtree(retired)
            else:
                work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def _restore_retired(staging_dir: Path, release_id: str) -> None:
    """Put back the last good load of a release whose swap was cut off between its two renames."""
    target = staging_dir / release_id
    retired = sorted(
        (folder for folder in staging_dir.glob(f".{release_id}-retired-*") if (folder / "summary.json").exists()),
        key=lambda folder: folder.stat().st_mtime,
    )
    if not target.exists() and retired:
        retired.pop().rename(target)
    for folder in retired:
        shutil.rmtree(folder, ignore_errors=True)


def read_staged(staging_dir: Path, release_ids: list[str] | None = None) -> list[StagedRelease]:
    """Read staged releases, oldest first; with `release_ids`, only those."""
    if not staging_dir.is_dir():
        return []
    for folder in staging_dir.glob(".*-retired-*"):
        release_id = folder.name[1:].split("-retired-", 1)[0]
        if not (staging_dir / release_id).exists() and (folder / "summary.json").exists():
            _restore_retired(staging_dir, release_id)
    staged = []
    for folder in sorted(staging_dir.iterdir()):
        if folder.name.startswith(".") or not (folder / "summary.json").exists():
            continue
        if release_ids is not None and folder.name not in release_ids:
            continue
        summary = json.loads((folder / "summary.json").read_text())
        tables = {table: pl.read_parquet(folder / f"{table}.parquet") for table in _TABLES}
        staged.append(StagedRelease(summary=summary, **tables))
    return sorted(staged, key=lambda item: (item.summary["effective_date"], item.summary["issue"]))


def effective_date_of(staged: StagedRelease) -> date:
    return date.fromisoformat(staged.summary["effective_date"])
