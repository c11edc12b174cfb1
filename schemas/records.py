"""pandera models (polars backend) for CMS records before and after normalization.

`RawRecord` contains the field rules of the CMS record layout and runs on the raw string
frames the readers return; a row that fails any rule goes to `rejected_record`.
`ReleaseRecord` describes the typed rows of `hcpcs_release_record`.

Validate eager `polars.DataFrame`s: on a `LazyFrame` pandera checks only the schema unless
PANDERA_VALIDATION_DEPTH says otherwise, and the data checks here are the point.
"""

import polars as pl
import pandera.polars as pa
from pandera.api.polars.types import PolarsData

from hcpcs import layout
from hcpcs.lookups import load_code_table

PROCEDURE_CODE_PATTERN = r"^[A-V][0-9]{4}$"
MODIFIER_CODE_PATTERN = r"^[A-Z0-9]{2}$"
ACTION_CODES = ("A", "B", "C", "D", "F", "N", "P", "R", "S", "T")
COVERAGE_CODES = ("C", "D", "I", "M", "S")

PRICING_INDICATOR_CODES = tuple(load_code_table("pricing_indicator")["code"].to_list())
MULTIPLE_PRICING_INDICATOR_CODES = tuple(load_code_table("multiple_pricing_indicator")["code"].to_list())


def _blank_or_in(values: tuple[str, ...]) -> list[str]:
    return ["", *values]


def _is_blank_or_calendar_date(column: pl.Expr) -> pl.Expr:
    parsed = column.str.strptime(pl.Date, "%Y%m%d", strict=False)
    return (column == "") | (column.str.contains(r"^[0-9]{8}$") & parsed.is_not_null())


class RawRecord(pa.DataFrameModel):
    """One first record (record id 3 or 7) of an ANWEB file, every field a trimmed string."""

    line_number: int = pa.Field(ge=1)
    hcpc: str = pa.Field(str_matches=r"^(?:[A-V][0-9]{4}|[A-Z0-9]{2})$")
    seqnum: str = pa.Field(str_matches=r"^[0-9]{1,5}$")
    recid: str = pa.Field(isin=list(layout.FIRST_RECORD_IDS))
    long_description: str = pa.Field(str_length={"min_value": 1})
    short_description: str
    price1: str = pa.Field(isin=_blank_or_in(PRICING_INDICATOR_CODES))
    price2: str = pa.Field(isin=_blank_or_in(PRICING_INDICATOR_CODES))
    price3: str = pa.Field(isin=_blank_or_in(PRICING_INDICATOR_CODES))
    price4: str = pa.Field(isin=_blank_or_in(PRICING_INDICATOR_CODES))
    mult_pi: str = pa.Field(isin=_blank_or_in(MULTIPLE_PRICING_INDICATOR_CODES))
    cov: str = pa.Field(isin=_blank_or_in(COVERAGE_CODES))
    asc_grp: str = pa.Field(isin=["", "YY"])
    procnote: str = pa.Field(str_matches=r"^(?:[0-9]{4})?$")
    anest_bu: str = pa.Field(str_matches=r"^[0-9]{0,3}$")
    action_cd: str = pa.Field(isin=list(ACTION_CODES))
    asc_dt: str
    opps_dt: str
    add_dt: str
    act_eff_dt: str
    term_dt: str

    class Config:
        strict = False
        coerce = False

    @pa.check("asc_dt", "opps_dt", "add_dt", "act_eff_dt", "term_dt", name="blank or a calendar date as YYYYMMDD")
    def calendar_date(cls, data: PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_is_blank_or_calendar_date(pl.col(data.key)))

    @pa.dataframe_check(name="procedure codes (record id 3) match ^[A-V][0-9]{4}$, modifiers (record id 7) two letters or digits")
    def code_matches_record_id(cls, data: PolarsData) -> pl.LazyFrame:
        procedure = (pl.col("recid") == layout.PROCEDURE_FIRST) & pl.col("hcpc").str.contains(PROCEDURE_CODE_PATTERN)
        modifier = (pl.col("recid") == layout.MODIFIER_FIRST) & pl.col("hcpc").str.contains(MODIFIER_CODE_PATTERN)
        return data.lazyframe.select(procedure | modifier)


class ReleaseRecord(pa.DataFrameModel):
    """One code as one release published it, normalized: a row of `hcpcs_release_record`."""

    release_id: str
    hcpcs_code: str = pa.Field(str_matches=r"^(?:[A-V][0-9]{4}|[A-Z0-9]{2})$")
    code_type: str = pa.Field(isin=["procedure", "modifier"])
    record_id: str = pa.Field(isin=list(layout.FIRST_RECORD_IDS))
    sequence_number: pl.Int32 = pa.Field(ge=0)
    long_description: str
    short_description: str = pa.Field(nullable=True)
    multiple_pricing_indicator_code: str = pa.Field(nullable=True)
    coverage_code: str = pa.Field(nullable=True, isin=list(COVERAGE_CODES))
    anesthesia_base_units: pl.Int16 = pa.Field(nullable=True, ge=0)
    code_added_date: pl.Date = pa.Field(nullable=True)
    action_effective_date: pl.Date = pa.Field(nullable=True)
    termination_date: pl.Date = pa.Field(nullable=True)
    action_code: str = pa.Field(isin=list(ACTION_CODES))
    source_file: str
    source_line: int = pa.Field(ge=1)

    class Config:
        strict = False
        unique = ["release_id", "hcpcs_code"]
