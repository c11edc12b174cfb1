"""Settings of the pipeline, as a Dagster resource with working defaults."""

import os
from pathlib import Path

import dagster as dg

from hcpcs.warehouse import DEFAULT_LOCK_TIMEOUT_SECONDS, DEFAULT_MAX_CODE_DROP

DEFAULT_RAW_DIR = "data/raw"
DEFAULT_WAREHOUSE = "data/warehouse/hcpcs.duckdb"


class HcpcsSettings(dg.ConfigurableResource):
    """Where the CMS release files are, where the warehouse goes, and the load limits."""

    raw_dir: str = DEFAULT_RAW_DIR
    warehouse_path: str = DEFAULT_WAREHOUSE
    max_code_drop: float = DEFAULT_MAX_CODE_DROP
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS

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
    """Build the settings from HCPCS_RAW_DIR, HCPCS_WAREHOUSE, HCPCS_MAX_CODE_DROP and HCPCS_LOCK_TIMEOUT."""
    return HcpcsSettings(
        raw_dir=os.environ.get("HCPCS_RAW_DIR") or DEFAULT_RAW_DIR,
        warehouse_path=os.environ.get("HCPCS_WAREHOUSE") or DEFAULT_WAREHOUSE,
        max_code_drop=float(os.environ.get("HCPCS_MAX_CODE_DROP") or DEFAULT_MAX_CODE_DROP),
        lock_timeout_seconds=float(os.environ.get("HCPCS_LOCK_TIMEOUT") or DEFAULT_LOCK_TIMEOUT_SECONDS),
    )
