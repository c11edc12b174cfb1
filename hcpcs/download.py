"""Download CMS quarterly 'Alpha-Numeric HCPCS File' zips into the raw folder.

CMS posts one zip per quarter, for the releases effective in January, April, July and October.
A download is written into a hidden work folder inside the raw folder and checked there: every
byte the server announced must arrive, every zip member must pass its CRC check, and an ANWEB
data member must be present. Only then is the zip moved into place with `os.replace`, so the
raw folder never shows a partial zip. The work folder is removed whatever the outcome.
"""

import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import NoReturn

from hcpcs.errors import HcpcsError, ReleaseFileError
from hcpcs.releases import IGNORED_ENTRIES, Release, read_release

DEFAULT_BASE_URL = "https://www.cms.gov/files/zip/"
DEFAULT_FILE_PATTERN = "{month_name}-{year}-alpha-numeric-hcpcs-file.zip"

# Placeholders a file-name pattern may use, for the April 2026 file: year=2026, quarter=2,
# month=04, month_name=april, month_abbr=apr.
PATTERN_FIELDS = ("year", "quarter", "month", "month_name", "month_abbr")

QUARTER_MONTHS = {1: 1, 2: 4, 3: 7, 4: 10}

# English names, because CMS's URLs use them. calendar.month_name would follow the process locale.
MONTH_NAMES = {1: "January", 4: "April", 7: "July", 10: "October"}

DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_ATTEMPTS = 4
DEFAULT_BACKOFF_SECONDS = 2.0
MAX_REDIRECTS = 5

# A release zip contains ANWEB files of a few MB, so a response larger than this is not a CMS release file.
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024

# HTTP statuses that get another attempt: 429 Too Many Requests and the 5xx errors that are often temporary.
RETRYABLE_STATUS = {429, 500, 502, 503, 504}

USER_AGENT = "hcpcs-warehouse/0.1 (CMS HCPCS release download)"

ALREADY_PRESENT = "already present"
DOWNLOADED = "downloaded"
REPLACED = "replaced"

log = logging.getLogger(__name__)


class DownloadError(HcpcsError):
    """A release file could not be downloaded, or what arrived is not a usable release zip."""


class ReleaseNotPublishedError(DownloadError):
    """CMS has not posted the requested quarter's file (HTTP 404)."""


class _TransientError(Exception):
    """A failure that another attempt may not repeat: a lost connection, a timeout, a 5xx."""


@dataclass(frozen=True)
class QuarterlyRelease:
    """One quarterly CMS release, named by its year and quarter (1 = January, ..., 4 = October)."""

    year: int
    quarter: int

    def __post_init__(self) -> None:
        if self.quarter not in QUARTER_MONTHS:
            raise DownloadError(
                f"Quarter {self.quarter!r} is invalid. Use 1, 2, 3 or 4 for the January, April, July "
                "or October release."
            )
        if not 1900 <= self.year <= 2999:
            raise DownloadError(f"Year {self.year!r} is invalid. Use a four-digit year such as 2026.")

    @classmethod
    def containing(cls, day: date) -> "QuarterlyRelease":
        """Return the quarter that `day` falls in."""
        return cls(day.year, (day.month - 1) // 3 + 1)

    @property
    def month(self) -> int:
        return QUARTER_MONTHS[self.quarter]

    @property
    def label(self) -> str:
        """The release as users name it, such as `April 2026`."""
        return f"{MONTH_NAMES[self.month]} {self.year}"

    def file_name(self, pattern: str) -> str:
        """Fill the file-name pattern for this release."""
        values = {
            "year": self.year,
            "quarter": self.quarter,
            "month": f"{self.month:02d}",
            "month_name": MONTH_NAMES[self.month].lower(),
            "month_abbr": MONTH_NAMES[self.month][:3].lower(),
        }
        try:
            return pattern.format(**values)
        except (KeyError, IndexError, ValueError) as error:
            raise DownloadError(
                f"The download file-name pattern {pattern!r} is invalid ({error!r}). Use only the placeholders "
                + ", ".join("{" + name + "}" for name in PATTERN_FIELDS)
                + f", as in the default {DEFAULT_FILE_PATTERN!r}."
            ) from error

    def url(self, base_url: str, pattern: str) -> str:
        """Return the download URL: the base URL joined with the filled file-name pattern."""
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise DownloadError(
                f"The download base URL {base_url!r} is invalid. Use an http:// or https:// URL, such as the default "
                f"{DEFAULT_BASE_URL!r}."
            )
        return base_url.rstrip("/") + "/" + urllib.parse.quote(self.file_name(pattern))

    def saved_name(self, issue: int = 1) -> str:
        """Return the zip's name in the raw folder, from which `hcpcs.releases` reads year, month and issue.

        For example `2026-APR-alpha-numeric-hcpcs-file.zip` (release 2026-04), or
        `2026-APR-v2-alpha-numeric-hcpcs-file.zip` when the zip contains a re-issued (_v2) ANWEB file.
        """
        reissue = f"-v{issue}" if issue > 1 else ""
        return f"{self.year}-{MONTH_NAMES[self.month][:3].upper()}{reissue}-alpha-numeric-hcpcs-file.zip"


@dataclass(frozen=True)
class DownloadResult:
    """Outcome of a download: the URL requested, the release's place in the raw folder, and the size and
    SHA-256 of the response received (the same bytes as the saved zip, unless the status is "already present").
    """

    url: str
    final_url: str
    path: Path
    release_id: str
    bytes: int
    sha256: str
    status: str


@dataclass(frozen=True)
class _Fetched:
    final_url: str
    bytes: int
    sha256: str
    content_type: str


class _BoundedRedirectHandler(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS


def download_release(
    release: QuarterlyRelease,
    raw_dir: Path,
    *,
    base_url: str = DEFAULT_BASE_URL,
    file_pattern: str = DEFAULT_FILE_PATTERN,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> DownloadResult:
    """Download one quarterly release zip into `raw_dir`, unless the raw folder already contains the same data.

    `timeout_seconds` bounds the connection and each read, not the whole download. Connection
    errors, timeouts, cut-short responses and HTTP 429/5xx are tried again, `attempts` times in
    all, waiting `backoff_seconds`, then twice as long after each further failure.
    Raises ReleaseNotPublishedError on HTTP 404 and DownloadError on any other failure.
    """
    logger = logger or log
    url = release.url(base_url, file_pattern)
    raw_dir.mkdir(parents=True, exist_ok=True)

    # A dot-folder, which discover_releases skips, on the raw folder's file system so that
    # os.replace is atomic.
    work_dir = Path(tempfile.mkdtemp(prefix=".download-", dir=raw_dir))
    try:
        downloaded = work_dir / release.saved_name()
        fetched = _fetch_with_retries(url, downloaded, release, timeout_seconds, attempts, backoff_seconds, logger)
        candidate = _verify_release_zip(downloaded, url, fetched)
        return _move_into_raw_folder(release, candidate, raw_dir, url, fetched, logger)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _fetch_with_retries(
    url: str,
    destination: Path,
    release: QuarterlyRelease,
    timeout_seconds: float,
    attempts: int,
    backoff_seconds: float,
    logger,
) -> _Fetched:
    if attempts < 1:
        raise DownloadError(f"Download attempts must be 1 or more, got {attempts}.")
    for attempt in range(1, attempts + 1):
        try:
            return _fetch(url, destination, release, timeout_seconds)
        except _TransientError as error:
            if attempt == attempts:
                raise DownloadError(
                    f"Download of {url} failed after {attempts} attempts: {error}. "
                    "Check the network connection and try again later."
                ) from error
            delay = backoff_seconds * 2 ** (attempt - 1)
            logger.warning(
                "Download of %s failed (attempt %d of %d): %s. Retrying in %.1f s.", url, attempt, attempts, error, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _fetch(url: str, destination: Path, release: QuarterlyRelease, timeout_seconds: float) -> _Fetched:
    """Stream one response into `destination`, checking its size against Content-Length."""
    opener = urllib.request.build_opener(_BoundedRedirectHandler)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = opener.open(request, timeout=timeout_seconds)
    except urllib.error.HTTPError as error:
        error.close()
        _raise_for_status(error, url, release)
    except urllib.error.URLError as error:
        raise _TransientError(f"cannot connect ({error.reason})") from error
    except (OSError, http.client.HTTPException) as error:
        raise _TransientError(f"no response ({_describe(error)})") from error

    with response:
        expected = _content_length(response)
        if expected is not None and expected > MAX_DOWNLOAD_BYTES:
            raise DownloadError(
                f"{url} announces {expected} bytes, more than the limit of {MAX_DOWNLOAD_BYTES}. "
                "A CMS release zip is a few MB, so check the download base URL and file-name pattern."
            )
        received, digest = _stream_to_file(response, destination, url)
        if expected is not None and received != expected:
            raise _TransientError(f"the connection closed after {received} of {expected} bytes")
        return _Fetched(
            final_url=response.geturl(),
            bytes=received,
            sha256=digest,
            content_type=response.headers.get("Content-Type", ""),
        )


def _raise_for_status(error: urllib.error.HTTPError, url: str, release: QuarterlyRelease) -> NoReturn:
    if error.code == 404:
        raise ReleaseNotPublishedError(
            f"CMS has not published the {release.label} file yet at {url}; try again later. "
            "If CMS has posted it under another name, set the download file-name pattern to match."
        ) from error
    if error.code in RETRYABLE_STATUS:
        raise _TransientError(f"HTTP {error.code} {error.reason}") from error
    if 300 <= error.code < 400:
        raise DownloadError(
            f"{url} redirected more than {MAX_REDIRECTS} times or in a loop (HTTP {error.code}). "
            "Check the download base URL."
        ) from error
    raise DownloadError(
        f"{url} returned HTTP {error.code} {error.reason}. Check the download base URL and file-name pattern."
    ) from error


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _stream_to_file(response, destination: Path, url: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    received = 0
    with destination.open("wb") as output:
        while True:
            # Only reading the response is retried: a failed write (a full disk) is raised as it is.
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as error:
                raise _TransientError(f"the connection failed after {received} bytes ({_describe(error)})") from error
            if not chunk:
                break
            received += len(chunk)
            if received > MAX_DOWNLOAD_BYTES:
                raise DownloadError(
                    f"{url} sent more than the limit of {MAX_DOWNLOAD_BYTES} bytes. A CMS release zip is a few MB, "
                    "so check the download base URL and file-name pattern."
                )
            digest.update(chunk)
            output.write(chunk)
    return received, digest.hexdigest()


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__


def _verify_release_zip(path: Path, url: str, fetched: _Fetched) -> Release:
    """Check that the file is a complete zip containing ANWEB data, and return the release it contains."""
    try:
        zipfile.ZipFile(path).close()
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise DownloadError(
            f"{url} did not return a readable zip file ({error}, {fetched.bytes} bytes, "
            f"Content-Type {fetched.content_type or 'not given'}). The download may have been cut short, or "
            "the server sent a web page instead of the file: check the download base URL and file-name pattern."
        ) from error

    # read_release also rejects members with unsafe paths or sizes, so it runs before any member is unpacked.
    try:
        release = read_release(path)
    except ReleaseFileError as error:
        raise DownloadError(
            f"{url} is not a CMS 'Alpha-Numeric HCPCS File' zip: {error.problem}. Check the download base URL "
            "and file-name pattern."
        ) from error

    damaged = _find_damaged_member(path)
    if damaged is not None:
        raise DownloadError(f"{url} returned a damaged zip: member {damaged}. Try the download again later.")
    return release


def _find_damaged_member(path: Path) -> str | None:
    """Unpack every member and return the first that fails, with the reason, or None when all pass their CRC check."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            try:
                with archive.open(info) as member:
                    while member.read(CHUNK_BYTES):
                        pass
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                return f"{info.filename!r} cannot be unpacked ({error})"
    return None


def _move_into_raw_folder(
    release: QuarterlyRelease, candidate: Release, raw_dir: Path, url: str, fetched: _Fetched, logger
) -> DownloadResult:
    """Move the checked zip into the raw folder, unless the folder already contains this release's data."""
    target = raw_dir / release.saved_name(candidate.issue)
    new_hash = candidate.content_hash()

    for existing in _releases_in(raw_dir, candidate.release_id):
        if _content_hash_or_none(existing) == new_hash:
            logger.info("Release %s from %s is already present as %s", candidate.release_id, url, existing.location)
            return _result(url, fetched, existing.location, candidate.release_id, ALREADY_PRESENT)
        if existing.location != target:
            raise DownloadError(
                f"{url} contains release {candidate.release_id}, but the raw folder already contains different data "
                f"for that release in {existing.location.name}. Move {existing.location.name} out of {raw_dir} if the "
                "download should take its place, then download again."
            )

    # The same name with other data is the same quarter's file, changed by CMS: the newer one replaces it.
    status = REPLACED if target.exists() else DOWNLOADED
    os.replace(candidate.location, target)
    logger.info("Saved release %s from %s as %s (%d bytes, %s)", candidate.release_id, url, target, fetched.bytes,
                status)
    return _result(url, fetched, target, candidate.release_id, status)


def _content_hash_or_none(release: Release) -> str | None:
    """Return the release's content hash, or None when its files cannot be read (a damaged zip)."""
    try:
        return release.content_hash()
    except (ReleaseFileError, zipfile.BadZipFile, OSError, KeyError):
        return None


def _releases_in(raw_dir: Path, release_id: str) -> list[Release]:
    """List the raw folder's releases with this id, skipping entries that are no release."""
    found = []
    for entry in sorted(raw_dir.iterdir()):
        if entry.name.startswith(".") or entry.name in IGNORED_ENTRIES:
            continue
        if not (entry.is_dir() or entry.suffix.lower() == ".zip"):
            continue
        try:
            existing = read_release(entry)
        except ReleaseFileError:
            continue
        if existing.release_id == release_id:
            found.append(existing)
    return found


def _result(url: str, fetched: _Fetched, path: Path, release_id: str, status: str) -> DownloadResult:
    return DownloadResult(
        url=url,
        final_url=fetched.final_url,
        path=path,
        release_id=release_id,
        bytes=fetched.bytes,
        sha256=fetched.sha256,
        status=status,
    )
