"""Settings of the pipeline, as a Dagster resource with working defaults."""

import os
from pathlib import Path

import dagster as dg

from hcpcs.download import DEFAULT_BASE_URL, DEFAULT_FILE_PATTERN
from hcpcs.warehouse import DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_MAX_CODE_DROP

DEFAULT_RAW_DIR = "data/raw"
DEFAULT_WAREHOUSE = "data/warehouse/hcpcs.duckdb"


class HcpcsSettings(dg.ConfigurableResource):
    """Paths of the CMS release files and the warehouse, the load limits, and the URL and file-name pattern
    of the quarterly CMS download.
    """

    raw_dir: str = DEFAULT_RAW_DIR
    warehouse_path: str = DEFAULT_WAREHOUSE
    max_code_drop: float = DEFAULT_MAX_CODE_DROP
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS
    download_base_url: str = DEFAULT_BASE_URL
    # Placeholders: {year}, {quarter}, {month} (01, 04, 07, 10), {month_name} (april), {month_abbr} (apr).
    download_file_pattern: str = DEFAULT_FILE_PATTERN

    @property
    def raw_path(self) -> Path:
        return Path(self.raw_dir)

    @property
    def warehouse(self) -> Path:
        return Path(self.warehouse_path)

    @property
    def staging_path(self) -> Path:
        """Folder of the last good load of every release, next to the warehouse file."""
        return self.warehouse.parent / "staging"


def settings_from_environment() -> HcpcsSettings:
    """Build the settings from HCPCS_RAW_DIR, HCPCS_WAREHOUSE, HCPCS_MAX_CODE_DROP, HCPCS_LOCK_TIMEOUT,
    HCPCS_DOWNLOAD_BASE_URL and HCPCS_DOWNLOAD_PATTERN.
    """
    return HcpcsSettings(
        raw_dir=os.environ.get("HCPCS_RAW_DIR") or DEFAULT_RAW_DIR,
        warehouse_path=os.environ.get("HCPCS_WAREHOUSE") or DEFAULT_WAREHOUSE,
        max_code_drop=float(os.environ.get("HCPCS_MAX_CODE_DROP") or DEFAULT_MAX_CODE_DROP),
        lock_timeout_seconds=float(os.environ.get("HCPCS_LOCK_TIMEOUT") or DEFAULT_LOCK_TIMEOUT_SECONDS),
        download_base_url=os.environ.get("HCPCS_DOWNLOAD_BASE_URL") or DEFAULT_BASE_URL,
        download_file_pattern=os.environ.get("HCPCS_DOWNLOAD_PATTERN") or DEFAULT_FILE_PATTERN,
    )
