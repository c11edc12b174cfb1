"""Materialization metadata shared by the assets: row counts, column schemas and previews."""

import dagster as dg
import polars as pl


def column_schema(frame: pl.DataFrame, descriptions: dict[str, str] | None = None) -> dg.TableSchema:
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=name, type=str(dtype), description=descriptions.get(name))
            for name, dtype in frame.schema.items()
        ]
    )


def preview(frame: pl.DataFrame, rows: int = 5) -> dg.MarkdownMetadataValue:
    """A small markdown table of the first rows, lists shown as text."""
    head = frame.head(rows).with_columns(
        [pl.col(name).cast(pl.List(pl.String)).list.join("|") for name, dtype in frame.schema.items()
         if isinstance(dtype, pl.List)]
    )
    header = "| " + " | ".join(head.columns) + " |"
    rule = "|" + "---|" * len(head.columns)
    body = ["| " + " | ".join("" if value is None else str(value)[:60] for value in row) + " |" for row in head.rows()]
    return dg.MetadataValue.md("\n".join([header, rule, *body]))


def table_metadata(frame: pl.DataFrame, descriptions: dict[str, str] | None = None) -> dict:
    return {
        "dagster/row_count": frame.height,
        "dagster/column_schema": column_schema(frame, descriptions),
        "preview": preview(frame),
    }
