"""pandera models (polars backend) for the warehouse tables, checked before the warehouse is written."""

import polars as pl
import pandera.polars as pa
from pandera.api.polars.types import PolarsData

from schemas.records import ACTION_CODES


class CodeVersion(pa.DataFrameModel):
    """One row of dim_hcpcs_code: one version of a code with its validity interval."""

    hcpcs_code: str = pa.Field(str_matches=r"^(?:[A-V][0-9]{4}|[A-Z0-9]{2})$")
    version_number: pl.Int32 = pa.Field(ge=1)
    valid_from: pl.Date
    valid_to: pl.Date
    is_current: bool
    code_type: str = pa.Field(isin=["procedure", "modifier"])
    long_description: str
    termination_date: pl.Date = pa.Field(nullable=True)
    action_code: str = pa.Field(isin=list(ACTION_CODES))
    first_release_id: str
    last_release_id: str
    release_count: pl.Int32 = pa.Field(ge=1)

    class Config:
        strict = False
        unique = ["hcpcs_code", "version_number"]

    @pa.dataframe_check(name="valid_from before valid_to")
    def interval_not_empty(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("valid_from") < pl.col("valid_to"))


class Release(pa.DataFrameModel):
    """One row of dim_hcpcs_release: one loaded release issue and its line accounting."""

    release_id: str = pa.Field(unique=True, str_matches=r"^[0-9]{4}-[0-9]{2}(?:-v[0-9]+)?$")
    period: str = pa.Field(str_matches=r"^[0-9]{4}-[0-9]{2}$")
    issue: int = pa.Field(ge=1)
    effective_date: pl.Date
    is_latest_issue: bool
    primary_file: str
    source_format: str = pa.Field(isin=["text", "workbook"])
    lines_read: int = pa.Field(ge=1)
    header_lines: int = pa.Field(ge=0)
    records_loaded: int = pa.Field(ge=1)
    continuation_lines: int = pa.Field(ge=0)
    rejected_lines: int = pa.Field(ge=0)
    is_reconciled: bool

    class Config:
        strict = False


class RejectedRecord(pa.DataFrameModel):
    """One row of rejected_record: one broken rule of one record."""

    release_id: str
    source_file: str
    line_number: int = pa.Field(ge=1)
    field: str
    rule: str
    outcome: str = pa.Field(isin=["record rejected", "field set to NULL"])
    run_id: str

    class Config:
        strict = False


class ReleaseChange(pa.DataFrameModel):
    """One row of hcpcs_release_changes."""

    release_id: str
    previous_release_id: str
    hcpcs_code: str
    change_type: str = pa.Field(isin=["added", "dropped", "discontinued", "reactivated", "changed", "restated"])

    class Config:
        strict = False
        unique = ["release_id", "hcpcs_code"]
