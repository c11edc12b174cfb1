"""Validate raw CMS records and turn the valid ones into typed `hcpcs_release_record` rows."""

import polars as pl
import pandera.polars as pa

from hcpcs import layout
from hcpcs.readers import REJECT_COLUMNS, ReadResult
from schemas.records import RawRecord

DATE_FORMAT = "%Y%m%d"

RECORD_REJECTED = "record rejected"
FIELD_NULLED = "field set to NULL"
# Fields whose bad value does not reject the whole record. The 2018 annual files shift the ASC
# date of C9488 and C9745-C9748 two columns left over the missing group code (D20170401 where
# DYY20170401 belongs), a CMS defect that should not cost those codes their 2018 statement.
NULLABLE_ON_ERROR = ("asc_grp", "asc_dt", "opps_dt")

# Readable rules for the field checks of schemas.records.RawRecord, by raw field; the
# rejected_record table shows these instead of pandera's check names.
FIELD_RULES = {
    "hcpc": "a procedure code is a letter A-V and four digits, a modifier two letters or digits",
    "seqnum": "the sequence number is digits",
    "recid": "the record id of a first record is 3 or 7",
    "long_description": "the long description is not blank",
    "price1": "blank or a code of the CMS pricing indicator table",
    "price2": "blank or a code of the CMS pricing indicator table",
    "price3": "blank or a code of the CMS pricing indicator table",
    "price4": "blank or a code of the CMS pricing indicator table",
    "mult_pi": "blank or a code of the CMS multiple pricing indicator table (9, A-G)",
    "cov": "blank or a coverage code: C, D, I, M or S",
    "asc_grp": "blank or YY",
    "procnote": "blank or a four-digit processing note number",
    "anest_bu": "blank or up to three digits",
    "action_cd": "an action code: A, B, C, D, F, N, P, R, S or T",
}


def validate_records(result: ReadResult) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a file's raw records into valid ones and rejections, one rejection per failed rule.

    Every rule of `schemas.records.RawRecord` runs in one pass (lazy=True), and a code that
    has more than one first record in the file is rejected on every line it appears on,
    because the file does not show which of them CMS meant.
    """
    records = result.records.with_row_index("_row")
    rejects = [result.rejects]

    try:
        RawRecord.validate(records.drop("_row"), lazy=True)
    except pa.errors.SchemaErrors as errors:
        rejects.append(_failure_rejects(records, errors.failure_cases))

    duplicated = records.filter(pl.col("hcpc").is_duplicated())
    rejects.append(
        duplicated.select(
            line_number="line_number",
            hcpcs_code="hcpc",
            field=pl.lit("hcpc"),
            value="hcpc",
            rule=pl.lit("one first record per code per release: this code has more than one"),
        ).cast(REJECT_COLUMNS)
    )

    all_rejects = pl.concat(rejects).with_columns(
        outcome=pl.when(pl.col("field").is_in(NULLABLE_ON_ERROR))
        .then(pl.lit(FIELD_NULLED))
        .otherwise(pl.lit(RECORD_REJECTED))
    )
    all_rejects = all_rejects.sort("line_number", "field")

    # A bad value in a secondary field (the ASC and MOG dates) costs only that field: the
    # record loads with the field NULL, and the value stays visible in rejected_record.
    nulled = all_rejects.filter(pl.col("outcome") == FIELD_NULLED)
    for field in NULLABLE_ON_ERROR:
        lines = nulled.filter(pl.col("field") == field)["line_number"].implode()
        records = records.with_columns(
            pl.when(pl.col("line_number").is_in(lines)).then(pl.lit("")).otherwise(pl.col(field)).alias(field)
        )
    rejected_lines = all_rejects.filter(pl.col("outcome") == RECORD_REJECTED)["line_number"].unique()
    valid = records.filter(~pl.col("line_number").is_in(rejected_lines.implode())).drop("_row")
    return valid, all_rejects


def _failure_rejects(records: pl.DataFrame, failures: pl.DataFrame) -> pl.DataFrame:
    unplaced = failures.filter(pl.col("index").is_null())
    if not unplaced.is_empty():
        # A schema-level failure (a missing column or wrong type) is a bug in the reader,
        # not bad CMS data, so it must not be hidden among rejected records.
        raise RuntimeError(f"raw record frame does not match its schema: {unplaced.to_dicts()}")
    located = failures.join(
        records.select("_row", "line_number", "hcpc", "recid"),
        left_on=pl.col("index").cast(pl.UInt32),
        right_on="_row",
        how="left",
    )
    is_frame_check = pl.col("schema_context") == "DataFrameSchema"
    return located.select(
        line_number="line_number",
        hcpcs_code="hcpc",
        field=pl.when(is_frame_check).then(pl.lit("hcpc")).otherwise(pl.col("column")),
        value=pl.when(is_frame_check).then(pl.col("hcpc")).otherwise(pl.col("failure_case")),
        rule=pl.when(is_frame_check)
        .then(pl.col("check"))
        .otherwise(pl.col("column").replace_strict(FIELD_RULES, default=pl.col("check"))),
    ).cast(REJECT_COLUMNS)


def _blank_to_null(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr == "").then(None).otherwise(expr)


def _ordered_list(columns: tuple[str, ...]) -> pl.Expr:
    """Collect the non-blank values of a repeated CMS field, in CMS position order."""
    # Joining with a unit separator and splitting again is several times faster than
    # list.eval(filter). The separator cannot occur inside a CMS field, because those are
    # fixed-width slices of printable text.
    joined = pl.concat_str(
        [pl.when(pl.col(name) != "").then(pl.col(name)) for name in columns], separator="\x1f", ignore_nulls=True
    )
    return pl.when(joined == "").then(pl.lit([], pl.List(pl.String))).otherwise(joined.str.split("\x1f"))


def normalize_records(valid: pl.DataFrame, release_id: str, source_file: str, source_format: str) -> pl.DataFrame:
    """Type validated raw records: trimmed text with blanks as NULL, DATE columns, ordered lists."""
    columns: dict[str, pl.Expr] = {
        "release_id": pl.lit(release_id),
        "hcpcs_code": pl.col("hcpc"),
        "code_type": pl.when(pl.col("recid") == layout.PROCEDURE_FIRST)
        .then(pl.lit("procedure"))
        .otherwise(pl.lit("modifier")),
        "record_id": pl.col("recid"),
        "sequence_number": pl.col("seqnum").cast(pl.Int32),
        "source_file": pl.lit(source_file),
        "source_line": pl.col("line_number"),
        "source_format": pl.lit(source_format),
        "continuation_lines": pl.col("continuation_lines").cast(pl.Int32),
    }
    for name, raw in layout.SCALAR_FIELDS.items():
        expr = _blank_to_null(pl.col(raw))
        if raw in layout.DATE_FIELDS:
            expr = expr.str.strptime(pl.Date, DATE_FORMAT, strict=True)
        elif raw == "anest_bu":
            expr = expr.cast(pl.Int16)
        columns[name] = expr
    for name, raw_columns in layout.REPEATED_FIELDS.items():
        columns[name] = _ordered_list(raw_columns)
    # The text file wraps descriptions at 80 characters and leaves double blanks around some
    # wraps. Collapsing runs of whitespace makes both formats state the same description.
    for name in ("long_description", "short_description"):
        columns[name] = columns[name].str.strip_chars()

    valid = valid.with_columns(
        _collapse_whitespace(valid["long_description"]), _collapse_whitespace(valid["short_description"])
    )
    return valid.select(**{name: columns[name] for name in RELEASE_RECORD_COLUMNS})


# A run of two or more whitespace characters contains either two spaces or a whitespace
# character other than the space: the characters of Unicode White_Space, which `\s` matches.
_WHITESPACE_RUN_MARKS = [
    "  ",
    *"\t\n\x0b\x0c\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000",
]


def _collapse_whitespace(values: pl.Series) -> pl.Series:
    """Replace each run of whitespace by one space, rewriting only the values that have a run.

    About one description in a hundred has such a run. A regular expression over every value
    took more than half of `normalize_records` on the 2019 file.
    """
    rows = values.str.contains_any(_WHITESPACE_RUN_MARKS).arg_true()
    if rows.is_empty():
        return values
    return values.scatter(rows, values.gather(rows).str.replace_all(r"\s+", " "))


# Column order of hcpcs_release_record: identity, CMS fields in layout order, lineage.
RELEASE_RECORD_COLUMNS: tuple[str, ...] = (
    "release_id",
    "hcpcs_code",
    "code_type",
    "record_id",
    "sequence_number",
    "long_description",
    "short_description",
    "pricing_indicator_codes",
    "multiple_pricing_indicator_code",
    "coverage_issues_manual_references",
    "carriers_manual_references",
    "statute_number",
    "lab_certification_codes",
    "cross_reference_codes",
    "coverage_code",
    "asc_payment_group_code",
    "asc_payment_group_effective_date",
    "mog_payment_group_code",
    "mog_payment_policy_indicator",
    "mog_effective_date",
    "processing_note_number",
    "betos_code",
    "type_of_service_codes",
    "anesthesia_base_units",
    "code_added_date",
    "action_effective_date",
    "termination_date",
    "action_code",
    "source_file",
    "source_line",
    "source_format",
    "continuation_lines",
)

# The CMS fields compared to decide whether a code changed between releases: every column
# but the identity, the record lineage, and the maintenance event. The action code, added
# date and action effective date describe the event, not what the code means, so they are
# kept on each version but never open one by themselves.
_NOT_BUSINESS_ATTRIBUTES = (
    "release_id",
    "hcpcs_code",
    "record_id",
    "sequence_number",
    "code_added_date",
    "action_effective_date",
    "action_code",
    "source_file",
    "source_line",
    "source_format",
    "continuation_lines",
)
BUSINESS_ATTRIBUTES: tuple[str, ...] = tuple(
    name for name in RELEASE_RECORD_COLUMNS if name not in _NOT_BUSINESS_ATTRIBUTES
)
