"""Tests that docs/warehouse.md matches the warehouse: its example queries run and its dictionary is current."""

import importlib.util
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
WAREHOUSE_DOC = (DOCS / "warehouse.md").read_text()
EXAMPLES = re.findall(r"```sql\n(.*?)```", WAREHOUSE_DOC, flags=re.DOTALL)


def load_tool(name: str):
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_have_examples():
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("query", EXAMPLES, ids=[f"example-{i}" for i in range(1, len(EXAMPLES) + 1)])
def test_example_query_returns_rows(real_warehouse, query):
    rows = real_warehouse.execute(query).fetchall()
    assert rows, query


def test_data_dictionary_matches_warehouse(real_warehouse):
    tool = load_tool("write_data_dictionary")
    expected = tool.replace_section(WAREHOUSE_DOC, tool.render(real_warehouse))
    assert WAREHOUSE_DOC == expected, "run: python tools/write_data_dictionary.py WAREHOUSE"


def test_every_relation_documented(real_warehouse):
    names = [row[0] for row in real_warehouse.execute(
        "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal"
    ).fetchall()]
    overview = WAREHOUSE_DOC.split("## Example queries")[0]
    for name in names + ["hcpcs_as_of"]:
        assert f"`{name}" in overview, name
