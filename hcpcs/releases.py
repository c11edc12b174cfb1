"""Find CMS HCPCS releases in the raw folder: one sub-folder or one zip per release.

CMS names its files differently every year (HCPC2016_CONTR_ANWEB, HCPC17_CONTR_ANWEB,
HCPC2020_ANWEB_w_disclaimer, HCPC2025_OCT_ANWEB, ...), so a release is identified from its
folder or zip name first and from its ANWEB file name second, never from one fixed pattern.
"""

import hashlib
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath

from hcpcs.errors import RawFolderError, ReleaseFileError

TEXT_SUFFIXES = (".txt",)
WORKBOOK_SUFFIXES = (".xlsx", ".xls")
DATA_SUFFIXES = TEXT_SUFFIXES + WORKBOOK_SUFFIXES
IGNORED_ENTRIES = {"README.md", ".gitkeep", ".gitignore"}

# A zip member larger than this is refused: the largest real ANWEB file is under 4 MB,
# so anything near this size is a damaged or hostile archive.
MAX_MEMBER_BYTES = 256 * 1024 * 1024

MONTHS = {
    "JAN": 1, "JANUARY": 1, "APR": 4, "APRIL": 4, "JUL": 7, "JULY": 7, "OCT": 10, "OCTOBER": 10,
    "FEB": 2, "MAR": 3, "MAY": 5, "JUN": 6, "AUG": 8, "SEP": 9, "NOV": 11, "DEC": 12,
}
_MONTH_PATTERN = re.compile(r"(?<![A-Z])(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")(?![A-Z])")
_YEAR_PATTERN = re.compile(r"(?<!\d)(20\d{2}|19\d{2})(?!\d)")
_SHORT_YEAR_PATTERN = re.compile(r"HCPCS?(\d{2})(?!\d)")
_ISSUE_PATTERN = re.compile(r"[_\-\s]V(\d{1,2})(?![0-9A-Z])")


@dataclass(frozen=True)
class Release:
    """One issue of a CMS release: where its files are and which of them carry the ANWEB data."""

    release_id: str
    effective_date: date
    issue: int
    location: Path
    primary_file: str
    cross_check_file: str | None
    processing_notes_file: str | None
    source_files: tuple[str, ...] = field(default=())

    @property
    def period(self) -> str:
        return self.effective_date.strftime("%Y-%m")

    @property
    def is_zip(self) -> bool:
        return self.location.is_file() and self.location.suffix.lower() == ".zip"

    def read_bytes(self, name: str) -> bytes:
        """Read one file of the release, from its folder or from inside its zip."""
        if not self.is_zip:
            return (self.location / name).read_bytes()
        try:
            with zipfile.ZipFile(self.location) as archive:
                info = archive.getinfo(name)
                _check_member(self.location, info)
                return archive.read(info)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, KeyError) as error:
            raise ReleaseFileError(
                self.location.name,
                f"zip member {name!r} cannot be read ({type(error).__name__}: {error})",
                "Download the zip again from CMS; it is damaged or was cut short.",
            ) from error

    def display_name(self, name: str) -> str:
        """Return the file's path as users see it, such as `2016-annual/HCPC2016_CONTR_ANWEB.txt`."""
        return f"{self.location.name}/{name}"

    def content_hash(self) -> str:
        """Return a SHA-256 over the release's data files, used to notice new or changed releases."""
        digest = hashlib.sha256()
        for name in self.source_files:
            digest.update(name.encode())
            digest.update(hashlib.sha256(self.read_bytes(name)).digest())
        return digest.hexdigest()


def _check_member(archive_path: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", name):
        raise ReleaseFileError(
            archive_path.name,
            f"zip member {name!r} has an absolute path or '..' in it",
            "Download the zip again from CMS; a CMS zip never contains such paths.",
        )
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ReleaseFileError(
            archive_path.name,
            f"zip member {name!r} is a symbolic link",
            "Download the zip again from CMS; a CMS zip contains only regular files.",
        )
    if info.file_size > MAX_MEMBER_BYTES:
        raise ReleaseFileError(
            archive_path.name,
            f"zip member {name!r} expands to {info.file_size} bytes, more than the limit of {MAX_MEMBER_BYTES}",
            "Download the zip again from CMS; the real ANWEB files are a few MB.",
        )


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_anweb(name: str) -> bool:
    path = PurePosixPath(name)
    lowered = name.lower()
    return (
        "anweb" in path.name.lower()
        and path.suffix.lower() in DATA_SUFFIXES
        and "correction" not in lowered
        and not path.name.startswith("~$")
    )


def _is_processing_notes(name: str) -> bool:
    path = PurePosixPath(name)
    return path.name.lower().startswith("proc_notes") and path.suffix.lower() == ".txt"


def _list_files(location: Path) -> list[str]:
    if location.is_file() and location.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(location) as archive:
                infos = archive.infolist()
        except (zipfile.BadZipFile, EOFError, OSError) as error:
            raise ReleaseFileError(
                location.name,
                f"not a readable zip file ({error})",
                "Download the zip again from CMS; the file is damaged or was cut short.",
            ) from error
        for info in infos:
            _check_member(location, info)
        return sorted(info.filename for info in infos if not info.is_dir())
    # Only the release folder's own files count: the corrections/ and noc/ sub-folders
    # that CMS ships next to the main file are other documents.
    return sorted(entry.name for entry in location.iterdir() if entry.is_file())


def _identify(location: Path, data_file: str) -> tuple[date, int]:
    folder_name = location.stem.upper()
    file_name = PurePosixPath(data_file).stem.upper()

    year = None
    for text in (folder_name, file_name):
        found = _YEAR_PATTERN.search(text.replace("_", " "))
        if found:
            year = int(found.group(1))
            break
        short = _SHORT_YEAR_PATTERN.search(text)
        if short:
            year = 2000 + int(short.group(1))
            break
    if year is None:
        raise ReleaseFileError(
            location.name,
            "cannot tell the release year from the folder name or the ANWEB file name",
            "Name the release folder or zip after its release, for example 2026-annual, 2026-APR or 2026-OCT-v2.",
        )

    month = 1  # The annual file, which CMS names without a month, is the January release.
    for text in (folder_name, file_name):
        found = _MONTH_PATTERN.search(text.replace("_", " ").replace("-", " "))
        if found:
            month = MONTHS[found.group(1)]
            break

    issue = 1
    for text in (file_name, folder_name):
        found = _ISSUE_PATTERN.search(text)
        if found:
            issue = int(found.group(1))
            break
    return date(year, month, 1), issue


def _choose_data_files(location: Path, candidates: list[str]) -> tuple[str, str | None]:
    texts = [name for name in candidates if PurePosixPath(name).suffix.lower() in TEXT_SUFFIXES]
    workbooks = sorted(
        (name for name in candidates if PurePosixPath(name).suffix.lower() in WORKBOOK_SUFFIXES),
        key=lambda name: (PurePosixPath(name).suffix.lower() != ".xlsx", name),
    )
    if len(texts) > 1 or len(workbooks) > 1 and len({PurePosixPath(n).suffix.lower() for n in workbooks}) == 1:
        raise ReleaseFileError(
            location.name,
            f"more than one ANWEB data file of the same format: {', '.join(candidates)}",
            "Keep one issue of a release per folder or zip; put a re-issue (_v2, _v3) in a folder of its own.",
        )
    if texts:
        return texts[0], (workbooks[0] if workbooks else None)
    return workbooks[0], None


def read_release(location: Path) -> Release:
    """Describe the release stored in one folder or zip of the raw folder."""
    files = _list_files(location)
    undecodable = [os.fsencode(name) for name in files if not _is_utf8(name)]
    if undecodable:
        raise ReleaseFileError(
            location.name,
            f"file names that are not valid UTF-8: {', '.join(repr(name) for name in undecodable)}",
            "Rename those files, or remove them from the release folder.",
        )
    candidates = [name for name in files if _is_anweb(name)]
    if not candidates:
        listed = ", ".join(files[:10]) or "no files"
        raise ReleaseFileError(
            location.name,
            f"no ANWEB data file (.txt, .xlsx or .xls with ANWEB in its name) found; it contains: {listed}",
            "Put the CMS 'Alpha-Numeric HCPCS File' zip, or the files extracted from it, in this folder.",
        )
    primary, cross_check = _choose_data_files(location, candidates)
    effective_date, issue = _identify(location, primary)
    notes = [name for name in files if _is_processing_notes(name)]
    release_id = effective_date.strftime("%Y-%m") + (f"-v{issue}" if issue > 1 else "")
    source_files = tuple(name for name in (primary, cross_check, notes[0] if notes else None) if name)
    return Release(
        release_id=release_id,
        effective_date=effective_date,
        issue=issue,
        location=location,
        primary_file=primary,
        cross_check_file=cross_check,
        processing_notes_file=notes[0] if notes else None,
        source_files=source_files,
    )


MISSING_RAW_HELP = (
    "Put one folder or zip per CMS release in {raw_dir}, for example {raw_dir}/2026-annual/ holding "
    "HCPC2026_JAN_ANWEB.txt or the workbook. Download the quarterly 'Alpha-Numeric HCPCS File' zips from "
    "https://www.cms.gov/medicare/coding-billing/healthcare-common-procedure-system/quarterly-update, "
    "or point HCPCS_RAW_DIR at a folder that already holds them."
)


def discover_releases(raw_dir: Path) -> list[Release]:
    """List every release under the raw folder, oldest first, failing on anything that is not a release."""
    if not raw_dir.is_dir():
        raise RawFolderError(f"Raw folder {raw_dir} does not exist. " + MISSING_RAW_HELP.format(raw_dir=raw_dir))
    entries = sorted(
        entry
        for entry in raw_dir.iterdir()
        if entry.name not in IGNORED_ENTRIES and not entry.name.startswith(".")
    )
    undecodable = [os.fsencode(entry.name) for entry in entries if not _is_utf8(entry.name)]
    if undecodable:
        raise RawFolderError(
            f"Raw folder {raw_dir} has entries whose names are not valid UTF-8: "
            f"{', '.join(repr(name) for name in undecodable)}. Rename them, for example to 2026-APR."
        )
    special = [entry.name for entry in entries if not entry.is_dir() and not entry.is_file()]
    if special:
        raise RawFolderError(
            f"Raw folder {raw_dir} has entries that are neither a folder nor a regular file (a broken link, "
            f"a pipe or a device): {', '.join(special)}. Remove them; each release is a folder or a zip file."
        )
    stray = [entry.name for entry in entries if entry.is_file() and entry.suffix.lower() != ".zip"]
    if stray:
        raise RawFolderError(
            f"Raw folder {raw_dir} has loose files that belong to no release: {', '.join(stray)}. "
            "Move each release's files into a folder of their own, such as 2026-APR/."
        )
    releases = [read_release(entry) for entry in entries]
    if not releases:
        raise RawFolderError(f"Raw folder {raw_dir} contains no CMS release. " + MISSING_RAW_HELP.format(raw_dir=raw_dir))

    seen: dict[str, Release] = {}
    for release in releases:
        if release.release_id in seen:
            raise RawFolderError(
                f"{seen[release.release_id].location.name} and {release.location.name} are both release "
                f"{release.release_id}. Keep one of them, or name the re-issue with its _v2/_v3 suffix."
            )
        seen[release.release_id] = release
    return sorted(releases, key=lambda release: (release.effective_date, release.issue))
