"""Warehouse invariants and data rules, as plain functions that return the failing rows."""

from dataclasses import dataclass

import polars as pl

from hcpcs.lookups import load_code_table
from hcpcs.warehouse import WarehouseTables


@dataclass
class CheckOutcome:
    """The rows that break one rule; the rule holds when there are none."""

    name: str
    description: str
    failures: pl.DataFrame

    @property
    def passed(self) -> bool:
        return self.failures.is_empty()


def one_current_version_per_code(versions: pl.DataFrame) -> pl.DataFrame:
    return versions.group_by("hcpcs_code").agg(current_versions=pl.col("is_current").sum()).filter(
        pl.col("current_versions") != 1
    )


def valid_from_before_valid_to(versions: pl.DataFrame) -> pl.DataFrame:
    return versions.filter(pl.col("valid_from") >= pl.col("valid_to")).select(
        "hcpcs_code", "version_number", "valid_from", "valid_to"
    )


def no_overlapping_versions(versions: pl.DataFrame) -> pl.DataFrame:
    return (
        versions.sort("hcpcs_code", "valid_from")
        .with_columns(next_valid_from=pl.col("valid_from").shift(-1).over("hcpcs_code"))
        .filter(pl.col("next_valid_from") < pl.col("valid_to"))
        .select("hcpcs_code", "version_number", "valid_from", "valid_to", "next_valid_from")
    )


def releases_reconciled(releases: pl.DataFrame) -> pl.DataFrame:
    return releases.filter(~pl.col("is_reconciled")).select(
        "release_id", "lines_read", "records_loaded", "continuation_lines", "header_lines", "rejected_lines"
    )


def one_record_per_code_and_release(records: pl.DataFrame) -> pl.DataFrame:
    return records.group_by("release_id", "hcpcs_code").len().filter(pl.col("len") > 1)


# Coded fields and the code table that decodes them.
_CODED_FIELDS = {
    "pricing_indicator_codes": "pricing_indicator",
    "multiple_pricing_indicator_code": "multiple_pricing_indicator",
    "lab_certification_codes": "lab_certification",
    "coverage_code": "coverage",
    "asc_payment_group_code": "asc_payment_group",
    "mog_payment_group_code": "mog_payment_group",
    "mog_payment_policy_indicator": "mog_payment_policy_indicator",
    "betos_code": "betos",
    "type_of_service_codes": "type_of_service",
    "action_code": "action",
}


def undecoded_values(versions: pl.DataFrame, notes: pl.DataFrame) -> pl.DataFrame:
    """List coded values of code versions that no lookup table (or processing note) decodes."""
    frames = []
    for column, table in _CODED_FIELDS.items():
        values = versions.select("hcpcs_code", "version_number", pl.col(column).alias("value"))
        if isinstance(values.schema["value"], pl.List):
            values = values.explode("value")
        known = load_code_table(table)["code"].implode()
        frames.append(
            values.drop_nulls("value")
            .filter(~pl.col("value").is_in(known))
            .with_columns(field=pl.lit(column))
        )
    if not notes.is_empty():
        known_notes = notes["processing_note_number"].implode()
        frames.append(
            versions.select("hcpcs_code", "version_number", value=pl.col("processing_note_number"))
            .drop_nulls("value")
            .filter(~pl.col("value").is_in(known_notes))
            .with_columns(field=pl.lit("processing_note_number"))
        )
    return pl.concat(frames).select("field", "value", "hcpcs_code", "version_number").sort("field", "value")


# Invariant checks: name -> (table they guard, what they require, function returning failing rows).
INVARIANTS = {
    "one_current_version_per_code": (
        "dim_hcpcs_code", "Every code has exactly one current version.",
        lambda tables: one_current_version_per_code(tables.versions),
    ),
    "no_overlapping_versions": (
        "dim_hcpcs_code", "No two versions of a code are in effect on the same day.",
        lambda tables: no_overlapping_versions(tables.versions),
    ),
    "valid_from_before_valid_to": (
        "dim_hcpcs_code", "Every version starts before it ends.",
        lambda tables: valid_from_before_valid_to(tables.versions),
    ),
    "releases_reconciled": (
        "dim_hcpcs_release",
        "Per release, lines read = records loaded + continuation lines + header lines + rejected lines.",
        lambda tables: releases_reconciled(tables.releases),
    ),
    "one_record_per_code_and_release": (
        "hcpcs_release_record", "A release states each code once.",
        lambda tables: one_record_per_code_and_release(tables.records),
    ),
}


def warehouse_invariants(tables: WarehouseTables) -> list[CheckOutcome]:
    """Evaluate the rules a warehouse must meet before it replaces the previous one."""
    return [
        CheckOutcome(name, description, failing_rows(tables))
        for name, (_, description, failing_rows) in INVARIANTS.items()
    ]
