"""Fuzzing the readers: mutated real CMS lines, random workbook cells, damaged zips and notes.

Every case is a raw folder loaded the way a refresh loads it (`discover_releases`, then
`load_release`) in a worker process with a time limit per case (see case_runner.py). A case
passes when it loads with every line accounted for, or raises an HcpcsError whose message
names the release. Another exception, a hang or an unaccounted line fails the test, and
the failing inputs stay in the test's tmp_path for a rerun.

The case counts scale with HCPCS_RELIABILITY_SCALE. The seeds are fixed, so a run at one
scale repeats exactly.
"""

import random
import shutil
import zipfile
from collections import Counter
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from hcpcs import layout
from tests.cms_files import continuation_record, first_record, workbook_row, write_text, write_workbook
from tests.reliability.case_runner import CaseOutcome, CaseRunner
from tests.reliability.support import assert_raw_unchanged, raw_checksums, scaled

RELEASE_FOLDER = "2026-APR"
INTERESTING_BYTES = (
    b"\x00", b"\xff", b"\x81", b"\x8d", b"\r", b"\n", b"\r\n", b"\t", b"\x0c", b" ", b"3", b"4", b"7", b"8",
    b"\xe9", b"'", b'"', b"\xef\xbb\xbf", b"\xff\xfe",
)
CODE_POOL = ("A0021", "A0080", "G0503", "J9999", "V5362", "C9088", "E0716", "25", "GA", "J5", "Q0")


def real_text_lines(shared_raw_dir: Path, pattern: str) -> list[list[bytes]]:
    """Return the lines, endings kept, of each real CMS file matching `pattern` (read only)."""
    files = sorted(shared_raw_dir.glob(pattern))
    assert files, f"no {pattern} under {shared_raw_dir}"
    return [path.read_bytes().splitlines(keepends=True) for path in files]


def mutate_lines(rng: random.Random, lines: list[bytes]) -> tuple[bytes, list[str]]:
    """Apply one to four random mutations to a list of lines, and return the bytes and the steps taken."""
    lines = list(lines)
    steps = []
    for _ in range(rng.randint(1, 4)):
        operation = rng.choice(LINE_MUTATIONS)
        if not lines and operation.__name__ != "insert_blank_line":
            continue
        steps.append(operation(rng, lines))
    data = b"".join(lines)
    if data and rng.random() < 0.3:
        data, step = mutate_bytes(rng, data)
        steps.append(step)
    return data, steps


def flip_bit(rng, lines):
    index = rng.randrange(len(lines))
    line = bytearray(lines[index])
    if not line:
        return "flip bit: empty line"
    position = rng.randrange(len(line))
    line[position] ^= 1 << rng.randrange(8)
    lines[index] = bytes(line)
    return f"flip bit: line {index + 1} byte {position}"


def replace_byte(rng, lines):
    index = rng.randrange(len(lines))
    line = lines[index]
    position = rng.randrange(len(line) + 1)
    value = rng.choice(INTERESTING_BYTES) if rng.random() < 0.7 else bytes([rng.randrange(256)])
    lines[index] = line[:position] + value + line[position + 1:]
    return f"replace byte: line {index + 1} byte {position} with {value!r}"


def insert_bytes(rng, lines):
    index = rng.randrange(len(lines))
    line = lines[index]
    position = rng.randrange(len(line) + 1)
    value = b"".join(rng.choice(INTERESTING_BYTES) for _ in range(rng.randint(1, 5)))
    lines[index] = line[:position] + value + line[position:]
    return f"insert bytes: line {index + 1} byte {position} {value!r}"


def delete_bytes(rng, lines):
    index = rng.randrange(len(lines))
    line = lines[index]
    start = rng.randrange(len(line) + 1)
    end = min(len(line), start + rng.randint(1, 100))
    lines[index] = line[:start] + line[end:]
    return f"delete bytes: line {index + 1} bytes {start}-{end}"


def cut_line(rng, lines):
    index = rng.randrange(len(lines))
    line = lines[index]
    ending = line[len(line.rstrip(b"\r\n")):]
    position = rng.randrange(len(line) - len(ending) + 1)
    lines[index] = line[:position] + ending
    return f"cut line {index + 1} at {position}"


def drop_line(rng, lines):
    index = rng.randrange(len(lines))
    del lines[index]
    return f"drop line {index + 1}"


def duplicate_line(rng, lines):
    index = rng.randrange(len(lines))
    lines.insert(index, lines[index])
    return f"duplicate line {index + 1}"


def swap_lines(rng, lines):
    first, second = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[first], lines[second] = lines[second], lines[first]
    return f"swap lines {first + 1} and {second + 1}"


def join_lines(rng, lines):
    index = rng.randrange(len(lines))
    lines[index] = lines[index].rstrip(b"\r\n")
    return f"join line {index + 1} with the next"


def set_record_id(rng, lines):
    index = rng.randrange(len(lines))
    line = lines[index]
    value = rng.choice(b"34780 X")
    if len(line) > 10:
        lines[index] = line[:10] + bytes([value]) + line[11:]
    return f"record id of line {index + 1} set to {chr(value)!r}"


def set_code(rng, lines):
    index = rng.randrange(len(lines))
    code = rng.choice(CODE_POOL).rjust(5).encode()
    lines[index] = code + lines[index][5:]
    return f"code of line {index + 1} set to {code!r}"


def pad_line(rng, lines):
    index = rng.randrange(len(lines))
    line = lines[index]
    ending = line[len(line.rstrip(b"\r\n")):]
    width = rng.choice((0, 11, 91, 292, 293, 319, 320, 321, 400))
    lines[index] = line.rstrip(b"\r\n")[:width].ljust(width) + ending
    return f"line {index + 1} cut or padded to {width} characters"


def insert_blank_line(rng, lines):
    index = rng.randrange(len(lines) + 1)
    lines.insert(index, rng.choice((b"\r\n", b"   \r\n", b"\n", b"\x1a")))
    return f"blank line inserted at {index + 1}"


LINE_MUTATIONS = (
    flip_bit, replace_byte, insert_bytes, delete_bytes, cut_line, drop_line, duplicate_line, swap_lines,
    join_lines, set_record_id, set_code, pad_line, insert_blank_line,
)


def mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """Apply one whole-file mutation: truncation, a byte order mark, or line endings changed."""
    choice = rng.randrange(4)
    if choice == 0:
        position = rng.randrange(len(data))
        return data[:position], f"file truncated at byte {position}"
    if choice == 1:
        mark = rng.choice((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"))
        return mark + data, f"byte order mark {mark!r} added"
    if choice == 2:
        return data.replace(b"\r\n", b"\n"), "CRLF changed to LF"
    return data.replace(b"\r\n", b"\r"), "CRLF changed to CR"


def write_case(base: Path, index: int, files: dict[str, bytes]) -> Path:
    raw = base / f"case-{index:04d}" / "raw"
    for name, data in files.items():
        path = raw / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return raw


def judge(outcome: CaseOutcome) -> str | None:
    """Return why the outcome breaks the reader contract, or None when it keeps it."""
    if outcome.kind in ("crashed", "hung"):
        return f"{outcome.kind}: {outcome.detail}"
    if outcome.kind == "rejected" and RELEASE_FOLDER not in outcome.detail:
        return f"error message does not name the release: {outcome.detail}"
    if outcome.kind == "loaded" and not outcome.reconciled:
        return f"{outcome.lines_read} lines read but {outcome.lines_accounted} accounted for"
    return None


def run_cases(runner: CaseRunner, base: Path, cases) -> tuple[Counter, list[str]]:
    """Load each (files, steps) case, keeping the raw folders of failing cases and deleting the rest."""
    kinds = Counter()
    failures = []
    for index, (files, steps) in enumerate(cases):
        raw = write_case(base, index, files)
        raw_before = raw_checksums(raw)
        outcome = runner.run(raw)
        assert_raw_unchanged(raw, raw_before)
        kinds[outcome.kind] += 1
        problem = judge(outcome)
        if problem:
            failures.append(f"case {raw.parent} ({'; '.join(steps)}): {problem}")
        else:
            shutil.rmtree(raw.parent)
    return kinds, failures


def text_cases(rng: random.Random, sources: list[list[bytes]], count: int):
    for _ in range(count):
        lines = rng.choice(sources)
        start = 0 if rng.random() < 0.2 else rng.randrange(len(lines))
        window = lines[start:start + rng.randint(1, 60)]
        data, steps = mutate_lines(rng, window)
        steps.insert(0, f"lines {start + 1}-{start + len(window)}")
        yield {f"{RELEASE_FOLDER}/HCPC2026_APR_ANWEB.txt": data}, steps


@pytest.mark.real_data
def test_text_reader_mutated_real_lines(tmp_path: Path, shared_raw_dir: Path, case_runner: CaseRunner):
    sources = real_text_lines(shared_raw_dir, "*/*ANWEB*.txt")
    kinds, failures = run_cases(case_runner, tmp_path, text_cases(random.Random(1), sources, scaled(300)))

    assert not failures, f"{len(failures)} of {sum(kinds.values())} cases broke the contract:\n" + "\n".join(failures[:20])
    assert kinds["loaded"] > 0, f"no case loaded, so the mutations are too heavy: {kinds}"
    assert kinds["rejected"] > 0, f"no case was rejected, so the mutations are too light: {kinds}"


# ---- workbooks -------------------------------------------------------------------------------


def random_cell(rng: random.Random):
    """Return a random cell value of a random type, as openpyxl writes it."""
    kind = rng.randrange(12)
    if kind == 0:
        return None
    if kind == 1:
        return ""
    if kind == 2:
        return rng.randint(-(10**12), 10**12)
    if kind == 3:
        return rng.choice((0, 1, 3, 7, 20200101, 2020010, 202001011, 99999999, 4, 8))
    if kind == 4:
        return rng.choice((0.5, -1.25, 1e308, 20200101.0, 20200101.5, 3.0, float("inf"), float("nan")))
    if kind == 5:
        return rng.choice((True, False))
    if kind == 6:
        return datetime(rng.randint(1900, 9999), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23))
    if kind == 7:
        return date(rng.randint(1900, 9999), rng.randint(1, 12), rng.randint(1, 28))
    if kind == 8:
        return rng.choice((time(12, 30), timedelta(days=3, hours=2)))
    if kind == 9:
        return rng.choice(("=1/0", "=A1", "=NA()", '="20200101"', "#N/A"))
    alphabet = "ABCZaz09 -_/'\"%;,.\u00e9\u2019\u00a0\u4e2d\U0001f600\t"
    length = rng.choice((1, 2, 5, 8, 80, 1000, 5000))
    text = "".join(rng.choice(alphabet) for _ in range(length))
    return ILLEGAL_CHARACTERS_RE.sub("", text)


def workbook_case(rng: random.Random, path: Path) -> list[str]:
    """Write one ANWEB-style workbook with random changes, and return the changes made."""
    steps = []
    rows = []
    for code in rng.sample(CODE_POOL, rng.randint(1, 6)):
        rows.append(workbook_row(code, f"Procedure {code}"))
        if rng.random() < 0.2:
            continuation = [None] * len(layout.RAW_COLUMNS)
            continuation[0] = code.rjust(5) if len(code) == 2 else code
            continuation[2] = layout.PROCEDURE_CONTINUATION
            continuation[3] = "continued"
            rows.append(continuation)
            steps.append(f"continuation row under {code}")

    for _ in range(rng.randint(0, 8)):
        row = rng.randrange(len(rows))
        column = rng.randrange(len(layout.RAW_COLUMNS) + 2)
        value = random_cell(rng)
        rows[row].extend([None] * (column + 1 - len(rows[row])))
        rows[row][column] = value
        steps.append(f"row {row + 1} column {column + 1} = {value!r:.40}")

    headers = list(layout.WORKBOOK_HEADERS)
    if rng.random() < 0.1:
        column = rng.randrange(len(headers))
        headers[column] = rng.choice((headers[column].lower(), f" {headers[column]}  ", "", "HCPC"))
        steps.append(f"header {column + 1} = {headers[column]!r}")
    if rng.random() < 0.1:
        width = rng.randrange(1, len(headers))
        headers = headers[:width]
        rows = [row[:width] for row in rows]
        steps.append(f"only {width} columns")

    disclaimers = rng.choice(([], ["Disclaimer"], ["CPT only copyright", "", "All rights reserved"]))
    write_workbook(path, rows, disclaimers=disclaimers, headers=headers, trailing_empty_rows=rng.randint(0, 2))

    if rng.random() < 0.15:
        data = bytearray(path.read_bytes())
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))
        steps.append("bytes of the .xlsx file changed")
    return steps


def workbook_cases(rng: random.Random, base: Path, count: int):
    for index in range(count):
        path = base / "workbooks" / f"case-{index:04d}.xlsx"
        path.parent.mkdir(parents=True, exist_ok=True)
        steps = workbook_case(rng, path)
        data = path.read_bytes()
        path.unlink()
        yield {f"{RELEASE_FOLDER}/HCPC2026_APR_ANWEB.xlsx": data}, steps


def test_workbook_reader_random_cells(tmp_path: Path, case_runner: CaseRunner):
    kinds, failures = run_cases(case_runner, tmp_path, workbook_cases(random.Random(2), tmp_path, scaled(80)))

    assert not failures, f"{len(failures)} of {sum(kinds.values())} cases broke the contract:\n" + "\n".join(failures[:20])
    assert kinds["loaded"] > 0, f"no case loaded, so the mutations are too heavy: {kinds}"
    assert kinds["rejected"] > 0, f"no case was rejected, so the mutations are too light: {kinds}"


# ---- zips and processing notes ---------------------------------------------------------------


def release_zip_bytes(path: Path) -> bytes:
    lines = [first_record(code, f"Procedure {code} with a description long enough to wrap onto a continuation")
             for code in CODE_POOL[:5]]
    lines.insert(1, continuation_record("A0021", "continued text of A0021"))
    text = "".join(line + "\r\n" for line in lines).encode("cp1252")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("HCPC2026_APR_ANWEB.txt", text)
        archive.writestr("proc_notes_2026.txt", b"PROCESSING NOTES\r\n\r\n0001--A NOTE.\r\n")
    return path.read_bytes()


def zip_cases(rng: random.Random, original: bytes, count: int):
    for _ in range(count):
        data = bytearray(original)
        steps = []
        if rng.random() < 0.2:
            cut = rng.randrange(len(data))
            del data[cut:]
            steps.append(f"zip truncated at byte {cut}")
        for _ in range(rng.randint(1, 3)):
            if data:
                position = rng.randrange(len(data))
                data[position] = rng.randrange(256)
                steps.append(f"zip byte {position} changed")
        yield {f"{RELEASE_FOLDER}.zip": bytes(data)}, steps


def test_zip_reader_damaged_archives(tmp_path: Path, case_runner: CaseRunner):
    original = release_zip_bytes(tmp_path / "original.zip")
    kinds, failures = run_cases(case_runner, tmp_path, zip_cases(random.Random(3), original, scaled(40)))

    assert not failures, f"{len(failures)} of {sum(kinds.values())} cases broke the contract:\n" + "\n".join(failures[:20])


def notes_cases(rng: random.Random, sources: list[list[bytes]], count: int):
    anweb = "".join(first_record(code) + "\r\n" for code in CODE_POOL[:4]).encode("cp1252")
    for _ in range(count):
        lines = rng.choice(sources)
        start = 0 if rng.random() < 0.3 else rng.randrange(len(lines))
        data, steps = mutate_lines(rng, lines[start:start + rng.randint(1, 40)])
        steps.insert(0, f"notes lines {start + 1}+")
        yield {f"{RELEASE_FOLDER}/HCPC2026_APR_ANWEB.txt": anweb, f"{RELEASE_FOLDER}/proc_notes_2026.txt": data}, steps


@pytest.mark.real_data
def test_notes_reader_mutated_real_lines(tmp_path: Path, shared_raw_dir: Path, case_runner: CaseRunner):
    sources = real_text_lines(shared_raw_dir, "*/proc_notes_*.txt")
    kinds, failures = run_cases(case_runner, tmp_path, notes_cases(random.Random(4), sources, scaled(30)))

    assert not failures, f"{len(failures)} of {sum(kinds.values())} cases broke the contract:\n" + "\n".join(failures[:20])


def test_notes_unknown_line_rejected(tmp_path: Path, case_runner: CaseRunner):
    raw = tmp_path / "raw"
    write_text(raw / RELEASE_FOLDER / "HCPC2026_APR_ANWEB.txt", [first_record("A0021")])
    write_text(raw / RELEASE_FOLDER / "proc_notes_2026.txt", ["PROCESSING NOTES", "", "0001--A NOTE.", "garbage"])

    outcome = case_runner.run(raw)

    assert outcome.kind == "rejected", f"{outcome.error_type}: {outcome.detail}"
    assert "proc_notes_2026.txt" in outcome.detail
