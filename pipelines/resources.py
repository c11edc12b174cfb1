"""Settings of the pipeline, as a Dagster resource with working defaults."""

import math
import os
from pathlib import Path

import dagster as dg

from hcpcs.download import DEFAULT_BASE_URL, DEFAULT_FILE_PATTERN
from hcpcs.errors import SettingError
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
        max_code_drop=_number_setting("HCPCS_MAX_CODE_DROP", DEFAULT_MAX_CODE_DROP, "a fraction from 0 to 1", 0, 1),
        lock_timeout_seconds=_number_setting(
            "HCPCS_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT_SECONDS, "a number of seconds, 0 or more", 0, None
        ),
        download_base_url=os.environ.get("HCPCS_DOWNLOAD_BASE_URL") or DEFAULT_BASE_URL,
        download_file_pattern=os.environ.get("HCPCS_DOWNLOAD_PATTERN") or DEFAULT_FILE_PATTERN,
    )


def _number_setting(name: str, default: float, meaning: str, low: float, high: float | None) -> float:
    """Read a numeric environment variable, raising SettingError that names it when its value is not usable."""
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    # NaN fails both comparisons, so text that is not a number is out of range too.
    if not (low <= value and (high is None or value <= high)):
        raise SettingError(
            f"invalid {name} {text!r}: it must be {meaning}. Change it, or unset it for the default {default:g}."
        )
    return value
