"""Tests for hcpcs.download and the cms_release_download asset, against an HTTP server on 127.0.0.1.

The server runs in a thread of the test process and serves zips that each test builds in the
CMS format, so every network failure is real: a 404, a slow reply, a cut-short body, a redirect.
"""

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from assets.download import CmsReleaseDownloadConfig, cms_release_download
from hcpcs.download import (
    ALREADY_PRESENT,
    DEFAULT_BASE_URL,
    DEFAULT_FILE_PATTERN,
    DOWNLOADED,
    MAX_REDIRECTS,
    REPLACED,
    DownloadError,
    QuarterlyRelease,
    ReleaseNotPublishedError,
    download_release,
)
from hcpcs.releases import discover_releases
from pipelines.resources import HcpcsSettings, settings_from_environment
from tests.cms_files import first_record, write_text, write_zip

APRIL_2026 = QuarterlyRelease(2026, 2)
APRIL_FILE = "april-2026-alpha-numeric-hcpcs-file.zip"
SAVED_NAME = "2026-APR-alpha-numeric-hcpcs-file.zip"

Route = Callable[[BaseHTTPRequestHandler], None]


class FixtureServer:
    """An HTTP server on 127.0.0.1 with an ephemeral port; `routes` maps a path to its response."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                route = server.routes.get(self.path)
                try:
                    if route is None:
                        self.send_error(404, "Not Found")
                    else:
                        route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # The client gave up first, as the timeout test intends.

            def log_message(self, format: str, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.stopped = False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    # Without proxy settings urllib connects to 127.0.0.1 directly, whatever the machine is set up with.
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    fixture_server = FixtureServer()
    fixture_server.start()
    yield fixture_server
    fixture_server.stop()


def send_body(data: bytes, *, status: int = 200, length: int | None = None) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/zip")
        handler.send_header("Content-Length", str(len(data) if length is None else length))
        handler.end_headers()
        handler.wfile.write(data)
        handler.close_connection = True

    return route


def send_status(status: int) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_error(status)

    return route


def redirect_to(location: str) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def sleep_then(seconds: float, route: Route) -> Route:
    def delayed(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        route(handler)

    return delayed


def fail_first(count: int, status: int, route: Route) -> Route:
    calls = []

    def flaky(handler: BaseHTTPRequestHandler) -> None:
        calls.append(handler.path)
        if len(calls) <= count:
            handler.send_error(status)
        else:
            route(handler)

    return flaky


def release_zip(tmp_path: Path, members: dict[str, list[str]] | None = None, name: str = "release.zip") -> bytes:
    """Build a CMS-style release zip: by default one ANWEB text file with two first records."""
    members = members or {"HCPC2026_APR_ANWEB.txt": [first_record("A0021"), first_record("A1")]}
    build_dir = tmp_path / "build"
    contents = {
        member: write_text(build_dir / member.replace("/", "_"), lines).read_bytes() for member, lines in members.items()
    }
    return write_zip(build_dir / name, contents).read_bytes()


def download(server: FixtureServer, raw_dir: Path, base_path: str = "/files/", **options):
    options.setdefault("backoff_seconds", 0)
    return download_release(APRIL_2026, raw_dir, base_url=server.url(base_path), **options)


def assert_raw_folder_empty(raw_dir: Path) -> None:
    assert sorted(entry.name for entry in raw_dir.iterdir()) == []


# ---- file names and quarters -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("quarter", "file_name", "saved_name"),
    [
        (1, "january-2026-alpha-numeric-hcpcs-file.zip", "2026-JAN-alpha-numeric-hcpcs-file.zip"),
        (2, "april-2026-alpha-numeric-hcpcs-file.zip", "2026-APR-alpha-numeric-hcpcs-file.zip"),
        (3, "july-2026-alpha-numeric-hcpcs-file.zip", "2026-JUL-alpha-numeric-hcpcs-file.zip"),
        (4, "october-2026-alpha-numeric-hcpcs-file.zip", "2026-OCT-alpha-numeric-hcpcs-file.zip"),
    ],
    ids=["january", "april", "july", "october"],
)
def test_quarter_file_names(quarter, file_name, saved_name):
    release = QuarterlyRelease(2026, quarter)
    assert release.file_name(DEFAULT_FILE_PATTERN) == file_name
    assert release.url(DEFAULT_BASE_URL, DEFAULT_FILE_PATTERN) == "https://www.cms.gov/files/zip/" + file_name
    assert release.saved_name() == saved_name


def test_saved_name_identifies_release(tmp_path):
    for quarter, release_id in [(1, "2026-01"), (2, "2026-04"), (3, "2026-07"), (4, "2026-10")]:
        raw_dir = tmp_path / str(quarter)
        name = QuarterlyRelease(2026, quarter).saved_name()
        write_zip(raw_dir / name, {"HCPC2026_ANWEB.txt": (first_record("A0021") + "\r\n").encode()})
        [release] = discover_releases(raw_dir)
        assert release.release_id == release_id


def test_pattern_placeholders():
    pattern = "{year}/Q{quarter}/hcpc{year}_{month}_{month_abbr}.zip"
    assert QuarterlyRelease(2026, 3).file_name(pattern) == "2026/Q3/hcpc2026_07_jul.zip"


def test_pattern_unknown_placeholder_rejected():
    with pytest.raises(DownloadError, match=r"pattern '\{monthname\}\.zip' is invalid.*\{month_name\}"):
        APRIL_2026.file_name("{monthname}.zip")


@pytest.mark.parametrize("base_url", ["www.cms.gov/files/zip/", "ftp://127.0.0.1/files/", ""], ids=["no-scheme", "ftp", "empty"])
def test_base_url_invalid_rejected(base_url):
    with pytest.raises(DownloadError, match="base URL .* is invalid. Use an http:// or https:// URL"):
        APRIL_2026.url(base_url, DEFAULT_FILE_PATTERN)


def test_quarter_out_of_range_rejected():
    with pytest.raises(DownloadError, match="Quarter 5 is invalid"):
        QuarterlyRelease(2026, 5)


@pytest.mark.parametrize(
    ("day", "quarter"),
    [(date(2026, 1, 1), 1), (date(2026, 3, 31), 1), (date(2026, 4, 1), 2), (date(2026, 9, 30), 3),
     (date(2026, 12, 31), 4)],
    ids=["jan-1", "mar-31", "apr-1", "sep-30", "dec-31"],
)
def test_quarter_containing_date(day, quarter):
    assert QuarterlyRelease.containing(day) == QuarterlyRelease(2026, quarter)


# ---- downloads -------------------------------------------------------------------------------


def test_download_saves_release_zip(server, tmp_path):
    data = release_zip(tmp_path)
    server.routes["/files/" + APRIL_FILE] = send_body(data)
    raw_dir = tmp_path / "raw"

    result = download(server, raw_dir)

    assert result.status == DOWNLOADED
    assert result.path == raw_dir / SAVED_NAME
    assert result.url == server.url("/files/" + APRIL_FILE)
    assert result.bytes == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.release_id == "2026-04"
    assert (raw_dir / SAVED_NAME).read_bytes() == data
    assert sorted(entry.name for entry in raw_dir.iterdir()) == [SAVED_NAME]
    assert [release.release_id for release in discover_releases(raw_dir)] == ["2026-04"]


def test_download_unpublished_quarter(server, tmp_path):
    raw_dir = tmp_path / "raw"
    url = server.url("/files/" + APRIL_FILE)

    with pytest.raises(ReleaseNotPublishedError) as raised:
        download(server, raw_dir)

    assert str(raised.value).startswith(f"CMS has not published the April 2026 file yet at {url}; try again later.")
    assert server.requests == ["/files/" + APRIL_FILE]
    assert_raw_folder_empty(raw_dir)


def test_download_timeout(server, tmp_path):
    server.routes["/files/" + APRIL_FILE] = sleep_then(2.0, send_body(release_zip(tmp_path)))
    raw_dir = tmp_path / "raw"

    started = time.monotonic()
    with pytest.raises(DownloadError, match="failed after 2 attempts: no response [(]timed out[)]"):
        download(server, raw_dir, timeout_seconds=0.5, attempts=2)

    assert time.monotonic() - started < 2.0
    assert len(server.requests) == 2
    assert_raw_folder_empty(raw_dir)


def test_download_zip_without_anweb(server, tmp_path):
    data = release_zip(tmp_path, {"HCPC2026_README.txt": ["Read me"]})
    server.routes["/files/" + APRIL_FILE] = send_body(data)
    raw_dir = tmp_path / "raw"

    with pytest.raises(DownloadError, match="is not a CMS 'Alpha-Numeric HCPCS File' zip: no ANWEB data file"):
        download(server, raw_dir)

    assert_raw_folder_empty(raw_dir)


def test_download_body_shorter_than_content_length(server, tmp_path):
    data = release_zip(tmp_path)
    server.routes["/files/" + APRIL_FILE] = send_body(data[: len(data) // 2], length=len(data))
    raw_dir = tmp_path / "raw"

    with pytest.raises(DownloadError, match=f"closed after {len(data) // 2} of {len(data)} bytes"):
        download(server, raw_dir, attempts=2)

    assert len(server.requests) == 2
    assert_raw_folder_empty(raw_dir)


def test_download_cut_zip(server, tmp_path):
    data = release_zip(tmp_path)[:-40]
    server.routes["/files/" + APRIL_FILE] = send_body(data)
    raw_dir = tmp_path / "raw"

    with pytest.raises(DownloadError, match="did not return a readable zip file"):
        download(server, raw_dir)

    assert_raw_folder_empty(raw_dir)


@pytest.mark.parametrize(
    "offset",
    [35, 60, 90],
    ids=["local-header-name", "deflate-stream", "crc-mismatch"],
)
def test_download_damaged_member(server, tmp_path, offset):
    # The member's local header is 30 bytes plus its 22-character name, so its data starts at byte 52.
    data = bytearray(release_zip(tmp_path))
    data[offset] ^= 0xFF
    server.routes["/files/" + APRIL_FILE] = send_body(bytes(data))
    raw_dir = tmp_path / "raw"

    with pytest.raises(DownloadError, match="returned a damaged zip: member 'HCPC2026_APR_ANWEB.txt' cannot be unpacked"):
        download(server, raw_dir)

    assert_raw_folder_empty(raw_dir)


def test_download_web_page_instead_of_zip(server, tmp_path):
    page = b"<html><body>Page moved</body></html>"

    def html(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(page)))
        handler.end_headers()
        handler.wfile.write(page)

    server.routes["/files/" + APRIL_FILE] = html
    raw_dir = tmp_path / "raw"

    with pytest.raises(DownloadError, match="Content-Type text/html"):
        download(server, raw_dir)

    assert_raw_folder_empty(raw_dir)


def test_download_follows_redirect(server, tmp_path):
    data = release_zip(tmp_path)
    server.routes["/old/" + APRIL_FILE] = redirect_to(server.url("/files/" + APRIL_FILE))
    server.routes["/files/" + APRIL_FILE] = send_body(data)
    raw_dir = tmp_path / "raw"

    result = download(server, raw_dir, base_path="/old/")

    assert result.status == DOWNLOADED
    assert result.url == server.url("/old/" + APRIL_FILE)
    assert result.final_url == server.url("/files/" + APRIL_FILE)
    assert (raw_dir / SAVED_NAME).read_bytes() == data
    assert server.requests == ["/old/" + APRIL_FILE, "/files/" + APRIL_FILE]


def test_download_redirect_chain_bounded(server, tmp_path):
    for hop in range(MAX_REDIRECTS + 2):
        server.routes[f"/hop{hop}/{APRIL_FILE}"] = redirect_to(server.url(f"/hop{hop + 1}/{APRIL_FILE}"))
    raw_dir = tmp_path / "raw"

    with pytest.raises(DownloadError, match="redirected more than"):
        download(server, raw_dir, base_path="/hop0/")

    assert len(server.requests) == MAX_REDIRECTS + 1
    assert_raw_folder_empty(raw_dir)


def test_download_retries_server_errors(server, tmp_path):
    data = release_zip(tmp_path)
    server.routes["/files/" + APRIL_FILE] = fail_first(2, 503, send_body(data))
    raw_dir = tmp_path / "raw"

    result = download(server, raw_dir, attempts=3)

    assert result.status == DOWNLOADED
    assert len(server.requests) == 3
    assert (raw_dir / SAVED_NAME).read_bytes() == data


def test_download_server_errors_exhaust_attempts(server, tmp_path):
    server.routes["/files/" + APRIL_FILE] = send_status(500)
    raw_dir = tmp_path / "raw"

    with pytest.raises(DownloadError, match="failed after 3 attempts: HTTP 500"):
        download(server, raw_dir, attempts=3)

    assert len(server.requests) == 3
    assert_raw_folder_empty(raw_dir)


def test_download_client_error_not_retried(server, tmp_path):
    server.routes["/files/" + APRIL_FILE] = send_status(403)
    raw_dir = tmp_path / "raw"

    with pytest.raises(DownloadError, match="returned HTTP 403"):
        download(server, raw_dir, attempts=3)

    assert len(server.requests) == 1
    assert_raw_folder_empty(raw_dir)


def test_download_connection_refused(tmp_path, server):
    port = server.httpd.server_address[1]
    server.stop()
    raw_dir = tmp_path / "raw"

    with pytest.raises(DownloadError, match="failed after 2 attempts: cannot connect"):
        download_release(APRIL_2026, raw_dir, base_url=f"http://127.0.0.1:{port}/files/", attempts=2,
                         backoff_seconds=0)

    assert_raw_folder_empty(raw_dir)


def test_download_identical_file_is_noop(server, tmp_path):
    data = release_zip(tmp_path)
    server.routes["/files/" + APRIL_FILE] = send_body(data)
    raw_dir = tmp_path / "raw"
    download(server, raw_dir)
    before = (raw_dir / SAVED_NAME).stat().st_mtime_ns

    result = download(server, raw_dir)

    assert result.status == ALREADY_PRESENT
    assert result.path == raw_dir / SAVED_NAME
    assert (raw_dir / SAVED_NAME).stat().st_mtime_ns == before
    assert sorted(entry.name for entry in raw_dir.iterdir()) == [SAVED_NAME]


def test_download_same_data_in_folder_is_noop(server, tmp_path):
    lines = [first_record("A0021"), first_record("A1")]
    raw_dir = tmp_path / "raw"
    write_text(raw_dir / "2026-APR" / "HCPC2026_APR_ANWEB.txt", lines)
    server.routes["/files/" + APRIL_FILE] = send_body(release_zip(tmp_path, {"HCPC2026_APR_ANWEB.txt": lines}))

    result = download(server, raw_dir)

    assert result.status == ALREADY_PRESENT
    assert result.path == raw_dir / "2026-APR"
    assert sorted(entry.name for entry in raw_dir.iterdir()) == ["2026-APR"]


def test_download_changed_file_replaces_it(server, tmp_path):
    raw_dir = tmp_path / "raw"
    first = release_zip(tmp_path, name="first.zip")
    server.routes["/files/" + APRIL_FILE] = send_body(first)
    download(server, raw_dir)
    changed = release_zip(tmp_path, {"HCPC2026_APR_ANWEB.txt": [first_record("A0021"), first_record("A0080")]},
                          name="changed.zip")
    server.routes["/files/" + APRIL_FILE] = send_body(changed)

    result = download(server, raw_dir)

    assert result.status == REPLACED
    assert (raw_dir / SAVED_NAME).read_bytes() == changed
    assert sorted(entry.name for entry in raw_dir.iterdir()) == [SAVED_NAME]


def test_download_failure_keeps_earlier_file(server, tmp_path):
    raw_dir = tmp_path / "raw"
    first = release_zip(tmp_path, name="first.zip")
    server.routes["/files/" + APRIL_FILE] = send_body(first)
    download(server, raw_dir)
    server.routes["/files/" + APRIL_FILE] = send_body(first[:100], length=len(first))

    with pytest.raises(DownloadError, match="closed after 100 of"):
        download(server, raw_dir, attempts=1)

    assert (raw_dir / SAVED_NAME).read_bytes() == first
    assert sorted(entry.name for entry in raw_dir.iterdir()) == [SAVED_NAME]


def test_download_conflicting_release_rejected(server, tmp_path):
    raw_dir = tmp_path / "raw"
    write_text(raw_dir / "2026-APR" / "HCPC2026_APR_ANWEB.txt", [first_record("A0021")])
    server.routes["/files/" + APRIL_FILE] = send_body(release_zip(tmp_path))

    with pytest.raises(DownloadError, match="already contains different data for that release in 2026-APR"):
        download(server, raw_dir)

    assert sorted(entry.name for entry in raw_dir.iterdir()) == ["2026-APR"]


def test_download_reissue_saved_as_its_issue(server, tmp_path):
    data = release_zip(tmp_path, {"HCPC2026_APR_ANWEB_v2.txt": [first_record("A0021")]})
    server.routes["/files/" + APRIL_FILE] = send_body(data)
    raw_dir = tmp_path / "raw"

    result = download(server, raw_dir)

    assert result.release_id == "2026-04-v2"
    assert result.path == raw_dir / "2026-APR-v2-alpha-numeric-hcpcs-file.zip"
    assert [release.release_id for release in discover_releases(raw_dir)] == ["2026-04-v2"]


# ---- settings and the Dagster asset ----------------------------------------------------------


def test_settings_download_from_environment(monkeypatch):
    monkeypatch.delenv("HCPCS_DOWNLOAD_BASE_URL", raising=False)
    monkeypatch.delenv("HCPCS_DOWNLOAD_PATTERN", raising=False)
    defaults = settings_from_environment()
    assert defaults.download_base_url == DEFAULT_BASE_URL
    assert defaults.download_file_pattern == DEFAULT_FILE_PATTERN

    monkeypatch.setenv("HCPCS_DOWNLOAD_BASE_URL", "http://127.0.0.1:9/mirror/")
    monkeypatch.setenv("HCPCS_DOWNLOAD_PATTERN", "hcpc{year}_{month_abbr}.zip")
    settings = settings_from_environment()
    assert settings.download_base_url == "http://127.0.0.1:9/mirror/"
    assert settings.download_file_pattern == "hcpc{year}_{month_abbr}.zip"


def download_settings(server: FixtureServer, tmp_path: Path) -> HcpcsSettings:
    return HcpcsSettings(
        raw_dir=str(tmp_path / "raw"),
        warehouse_path=str(tmp_path / "wh" / "hcpcs.duckdb"),
        download_base_url=server.url("/files/"),
    )


def materialize_download(settings: HcpcsSettings, year: int, quarter: int) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [cms_release_download],
        resources={"settings": settings},
        run_config=dg.RunConfig(ops={"cms_release_download": CmsReleaseDownloadConfig(year=year, quarter=quarter)}),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_asset_download_metadata(server, tmp_path):
    data = release_zip(tmp_path)
    server.routes["/files/" + APRIL_FILE] = send_body(data)
    settings = download_settings(server, tmp_path)

    result = materialize_download(settings, 2026, 2)
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["status"].value == DOWNLOADED
    assert metadata["release_id"].value == "2026-04"
    assert metadata["url"].value == server.url("/files/" + APRIL_FILE)
    assert metadata["bytes"].value == len(data)
    assert metadata["sha256"].value == hashlib.sha256(data).hexdigest()
    assert metadata["path"].value == str(tmp_path / "raw" / SAVED_NAME)

    result = materialize_download(settings, 2026, 2)
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["status"].value == ALREADY_PRESENT


def test_asset_download_unpublished_fails(server, tmp_path):
    settings = download_settings(server, tmp_path)

    result = materialize_download(settings, 2026, 3)

    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "CMS has not published the July 2026 file yet" in message
    assert_raw_folder_empty(tmp_path / "raw")


def test_asset_invalid_quarter_fails(server, tmp_path):
    result = materialize_download(download_settings(server, tmp_path), 2026, 5)

    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert "Quarter 5 is invalid" in failure.step_failure_data.error.message
    assert server.requests == []


def test_asset_config_defaults_to_current_quarter():
    config = CmsReleaseDownloadConfig()
    assert config.release(date(2026, 8, 15)) == QuarterlyRelease(2026, 3)
    assert CmsReleaseDownloadConfig(year=2025).release(date(2026, 8, 15)) == QuarterlyRelease(2025, 3)
