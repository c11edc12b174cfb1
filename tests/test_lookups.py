"""Tests for hcpcs.lookups and tools/extract_code_tables.py.

Tests marked real_data read the CMS releases under ../shared/data/hcpcs/raw. They
skip when that folder is missing, except under CI=true, where they fail.
"""

from __future__ import annotations

import filecmp
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from tests.conftest import require_shared
from hcpcs.lookups import (
    CODE_TABLE_NAMES,
    load_code_table,
    parse_processing_notes,
    read_processing_notes,
)

REPO_DIR = Path(__file__).resolve().parents[1]
RAW_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "hcpcs" / "raw"
CODE_TABLES_DIR = REPO_DIR / "hcpcs" / "code_tables"
EXTRACT_SCRIPT = REPO_DIR / "tools" / "extract_code_tables.py"


def require_raw_dir() -> Path:
    """Return the raw CMS folder; skip without it, or fail under CI=true."""
    return require_shared(RAW_DIR)


def layout_files() -> list[Path]:
    """Return the record layout of every annual release, oldest first."""
    paths = sorted(require_raw_dir().glob("*-annual/*recordlayout.txt"))
    assert paths, f"no *-annual/*recordlayout.txt files under {RAW_DIR}"
    return paths


def processing_note_files() -> list[Path]:
    paths = sorted(require_raw_dir().glob("*/proc_notes_*.txt"))
    assert paths, f"no */proc_notes_*.txt files under {RAW_DIR}"
    return paths


def run_extract_script(layouts: list[Path], output_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXTRACT_SCRIPT), *map(str, layouts), "--output-dir", str(output_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def load_extract_module() -> ModuleType:
    """Import tools/extract_code_tables.py, which is a script outside any package."""
    spec = importlib.util.spec_from_file_location("extract_code_tables", EXTRACT_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- code tables -----------------------------------------------------------------


def test_code_tables_folder_contents() -> None:
    file_names = sorted(path.name for path in CODE_TABLES_DIR.iterdir())
    assert file_names == sorted(f"{name}.csv" for name in CODE_TABLE_NAMES)


@pytest.mark.parametrize("name", CODE_TABLE_NAMES)
def test_code_table_shape(name: str) -> None:
    table = load_code_table(name)

    assert table.schema == pl.Schema({"code": pl.String, "description": pl.String, "category": pl.String})
    assert table.height > 0
    assert table["code"].is_unique().all(), table.filter(table["code"].is_duplicated())
    assert table["code"].null_count() == 0
    assert table["description"].null_count() == 0
    assert (table["description"].str.strip_chars() == table["description"]).all()


@pytest.mark.parametrize(
    ("name", "code", "description"),
    [
        (
            "pricing_indicator",
            "00",
            "Service not separately priced by part B (e.g., services not covered, bundled, used by part a only, etc.)",
        ),
        (
            "multiple_pricing_indicator",
            "9",
            "Not applicable as HCPCS not priced separately by part B (pricing indicator is 00) "
            "or value is not established (pricing indicator is '99')",
        ),
        ("coverage", "I", "Not payable by Medicare"),
        ("betos", "Z2", "Undefined codes"),
        ("type_of_service", "9", "Other medical items or services"),
        ("action", "N", "No maintenance for this code"),
        ("pricing_indicator", "40", "Lymphedema compression treatment items"),
        ("betos", "O1L", "Lymphedema compression treatment items"),
    ],
    ids=lambda value: value if len(value) < 30 else None,
)
def test_code_description_exact(name: str, code: str, description: str) -> None:
    table = load_code_table(name)
    assert table.filter(pl.col("code") == code)["description"].to_list() == [description]


@pytest.mark.parametrize(
    ("name", "code", "category"),
    [
        ("pricing_indicator", "00", None),
        ("pricing_indicator", "21", "Clinical Lab Fee Schedule"),
        ("pricing_indicator", "99", "Other"),
        ("lab_certification", "100", None),
        ("lab_certification", "110", "Microbiology"),
        ("lab_certification", "630", "Pathology"),
        ("mog_payment_group", "000", "No MOG applies"),
        ("mog_payment_group", "689", "Nervous/Eye"),
        ("coverage", "C", None),
    ],
)
def test_code_category(name: str, code: str, category: str | None) -> None:
    table = load_code_table(name)
    assert table.filter(pl.col("code") == code)["category"].to_list() == [category]


@pytest.mark.parametrize(
    ("name", "codes"),
    [
        ("record_id", ["3", "4", "7", "8"]),
        ("asc_payment_group", ["YY"]),
        ("coverage", ["C", "D", "I", "M", "S"]),
    ],
)
def test_code_table_exact_codes(name: str, codes: list[str]) -> None:
    assert load_code_table(name)["code"].to_list() == codes


def test_no_capitalised_eg_left() -> None:
    for name in CODE_TABLE_NAMES:
        descriptions = load_code_table(name)["description"]
        assert not descriptions.str.contains("e.G.", literal=True).any(), name


def test_load_unknown_table_error() -> None:
    with pytest.raises(ValueError, match="unknown code table 'betos_tb'") as raised:
        load_code_table("betos_tb")
    for name in CODE_TABLE_NAMES:
        assert name in str(raised.value)


# --- extract script on inline layout fragments ----------------------------------------


def test_extract_table_names_match_lookups() -> None:
    assert load_extract_module().TABLE_NAMES == CODE_TABLE_NAMES


def test_parse_code_block_headings() -> None:
    extract = load_extract_module()
    block = list(
        enumerate(
            [
                "      00 = Not priced",
                "      Clinical Lab",
                "      ------------",
                "      21 = Price subject to national",
                "           limitation amount (e.G., panels)",
                "",
                "      Other",
                "      22 = Drugs",
            ],
            start=10,
        )
    )

    rows = extract.parse_code_block(block, "pricing_indicator", "heading", "fixture.txt")

    assert rows == [
        extract.CodeRow("00", "Not priced", None),
        extract.CodeRow("21", "Price subject to national limitation amount (e.g., panels)", "Clinical Lab"),
        extract.CodeRow("22", "Drugs", "Other"),
    ]


def test_parse_code_block_parents() -> None:
    extract = load_extract_module()
    block = list(
        enumerate(
            [
                "   100 = Microbiology",
                "         110 = Bacteriology",
                "   200 = Diagnostic immunology",
                "         210 = Syphilis serology",
            ],
            start=1,
        )
    )

    rows = extract.parse_code_block(block, "lab_certification", "parent", "fixture.txt")

    assert [row.category for row in rows] == [None, "Microbiology", None, "Diagnostic immunology"]


def test_parse_code_block_stray_text() -> None:
    extract = load_extract_module()
    block = [(5, "   A = Add"), (6, "   Something else")]

    with pytest.raises(ValueError, match=r"fixture\.txt line 6: cannot parse 'Something else'"):
        extract.parse_code_block(block, "action", "none", "fixture.txt")


def test_parse_code_block_repeated_code() -> None:
    extract = load_extract_module()
    block = [(5, "   A = Add"), (6, "   A = Again")]

    with pytest.raises(ValueError, match=r"fixture\.txt line 6: action code 'A' is listed again"):
        extract.parse_code_block(block, "action", "none", "fixture.txt")


# --- extract script on the real layouts -----------------------------------------------


@pytest.mark.real_data
def test_extract_each_layout_subset(tmp_path: Path) -> None:
    for layout in layout_files():
        output_dir = tmp_path / layout.parent.name
        run_extract_script([layout], output_dir)

        for name in CODE_TABLE_NAMES:
            extracted = pl.read_csv(output_dir / f"{name}.csv", infer_schema=False)
            committed = load_code_table(name)
            missing = set(extracted["code"]) - set(committed["code"])
            assert not missing, f"{layout.name}: {name} codes missing from the committed CSV: {sorted(missing)}"


@pytest.mark.real_data
def test_extract_newest_layout_matches(tmp_path: Path) -> None:
    newest = layout_files()[-1]
    run_extract_script([newest], tmp_path)

    for name in CODE_TABLE_NAMES:
        assert filecmp.cmp(tmp_path / f"{name}.csv", CODE_TABLES_DIR / f"{name}.csv", shallow=False), (
            f"{name}.csv from {newest.name} differs from the committed file; "
            "rerun tools/extract_code_tables.py on all layouts"
        )


@pytest.mark.real_data
def test_extract_all_layouts_match(tmp_path: Path) -> None:
    run_extract_script(layout_files(), tmp_path)

    for name in CODE_TABLE_NAMES:
        assert filecmp.cmp(tmp_path / f"{name}.csv", CODE_TABLES_DIR / f"{name}.csv", shallow=False), name


# --- processing notes ---------------------------------------------------------------

NOTES_FIXTURE = (
    "                                        PROCESSING NOTES\r\n"
    " ________________________________________\r\n"
    "\r\n"
    "          0001--THIS PROCESSING NOTE DELETED 1/1/97.                                       *\r\n"
    "                                                                                           *\r\n"
    '          0088--"S" CODES ARE UNIQUE TEMPORARY CODES ESTABLISHED BY BCBSA AND HIAA FOR     *\r\n'
    "                PRIVATE PAYOR USE. THEY ARE NOT VALID NOR PAYABLE BY MEDICARE.             *\r\n"
    "\r\n"
    "\t  0212--CMS-1682-R.\t\t\t\t\t\t\t   *\r\n"
    "\t  0214--SERVICES FOR RURAL HEALTH CLINIC OR FEDERALLY QUALIFIED\r\n"
    "\t\tHEALTH CENTERS.\t\r\n"
)


def test_parse_notes_fixture() -> None:
    notes = parse_processing_notes(NOTES_FIXTURE, "proc_notes_fixture.txt")

    assert notes.schema == pl.Schema(
        {
            "processing_note_number": pl.String,
            "note_text": pl.String,
            "source_file": pl.String,
            "line_number": pl.Int64,
        }
    )
    assert notes["processing_note_number"].to_list() == ["0001", "0088", "0212", "0214"]
    assert notes["line_number"].to_list() == [4, 6, 9, 10]
    assert notes["source_file"].unique().to_list() == ["proc_notes_fixture.txt"]
    assert notes["note_text"].to_list() == [
        "THIS PROCESSING NOTE DELETED 1/1/97.",
        '"S" CODES ARE UNIQUE TEMPORARY CODES ESTABLISHED BY BCBSA AND HIAA FOR PRIVATE PAYOR USE. '
        "THEY ARE NOT VALID NOR PAYABLE BY MEDICARE.",
        "CMS-1682-R.",
        "SERVICES FOR RURAL HEALTH CLINIC OR FEDERALLY QUALIFIED HEALTH CENTERS.",
    ]


def test_parse_notes_empty_text() -> None:
    notes = parse_processing_notes("", "empty.txt")
    assert notes.height == 0
    assert notes.columns == ["processing_note_number", "note_text", "source_file", "line_number"]


def test_parse_notes_duplicate_number() -> None:
    text = "          0005--FIRST.     *\n          *\n          0005--SECOND.    *\n"

    with pytest.raises(ValueError, match=r"dup\.txt line 3: processing note number 0005 appears twice") as raised:
        parse_processing_notes(text, "dup.txt")
    assert "first on line 1" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "bad_line"),
    [
        ("          0001--TEXT.    *\nGARBAGE AT COLUMN ONE\n", 2),
        ("          0001--TEXT.    *\n\n                INDENTED AFTER A BLANK LINE\n", 3),
        ("   SOME TITLE THAT IS NOT PROCESSING NOTES\n          0001--TEXT.\n", 1),
    ],
    ids=["unindented", "after-blank", "before-first-note"],
)
def test_parse_notes_garbage_line(text: str, bad_line: int) -> None:
    with pytest.raises(ValueError, match=rf"garbage\.txt line {bad_line}: cannot parse"):
        parse_processing_notes(text, "garbage.txt")


def test_parse_notes_note_without_text() -> None:
    with pytest.raises(ValueError, match=r"blank\.txt line 1: processing note 0007 has no text"):
        parse_processing_notes("          0007--        *\n", "blank.txt")


def test_read_notes_invalid_cp1252(tmp_path: Path) -> None:
    path = tmp_path / "proc_notes_bad.txt"
    path.write_bytes(b"          0001--TEXT \x81.\r\n")

    with pytest.raises(ValueError, match=r"proc_notes_bad\.txt: byte 21 is not valid Windows-1252"):
        read_processing_notes(path)


@pytest.mark.real_data
def test_read_notes_real_files() -> None:
    total = 0
    for path in processing_note_files():
        notes = read_processing_notes(path)

        assert notes.height > 0, path.name
        assert notes["processing_note_number"].is_unique().all(), path.name
        assert notes["processing_note_number"].str.contains(r"^\d{4}$").all(), path.name
        assert not notes["note_text"].str.contains(r"\*\s*$|\s{2}|\t").any(), path.name
        assert (notes["source_file"] == path.name).all()
        total += notes.height
    assert total > 500


@pytest.mark.real_data
def test_read_notes_2020_note_0088() -> None:
    notes = read_processing_notes(require_raw_dir() / "2020-annual" / "proc_notes_2020.txt")

    note = notes.filter(pl.col("processing_note_number") == "0088")
    assert note["note_text"].to_list() == [
        '"S" CODES ARE UNIQUE TEMPORARY CODES ESTABLISHED BY BCBSA AND HIAA FOR PRIVATE PAYOR USE. '
        "THEY ARE NOT VALID NOR PAYABLE BY MEDICARE."
    ]
    assert note["line_number"].to_list() == [239]
