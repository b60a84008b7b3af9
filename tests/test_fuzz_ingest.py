"""Fuzzing ingest: whatever the files hold or are called, no traceback, every bad one named.

A seeded generator writes a folder of hostile files (random bytes, many encodings, huge
lines, odd names, every JSON shape) and indexes it through the CLI and the API; hypothesis
then throws arbitrary JSON values at the record reader. Bounded: about 20 s in all.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rag import Index
from rag.cli import app
from rag.ingest import articles_from_records, load
from rag.output import relative
from rag.records import Article, Skipped
from rag.sanitize import terminal_text

KOREAN = (
    "카카오엔터프라이즈가 클라우드 사업에 집중한다. 인공지능 사업은 카카오브레인이 맡는다. "
    "이경진 신임 대표는 수익 구조가 좋지 않았다고 말했다. "
)
ENGLISH = "Caf\u00e9 r\u00e9sum\u00e9 na\u00efve fa\u00e7ade, d\u00e9j\u00e0 vu. "


def _random_text(rng: random.Random, n: int) -> str:
    alphabet = KOREAN + ENGLISH + "\t\n\r\x1b[0m\u200b\u202e\ufeff<>/\\\"'{}[]"
    return "".join(rng.choice(alphabet) for _ in range(n))


def _json_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["null", "bool", "int", "float", "str", "list", "dict"]
    kind = rng.choice(kinds if depth < 4 else kinds[:5])
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 2**70, rng.randint(-1000, 1000)])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e-300])
    if kind == "str":
        return _random_text(rng, rng.randint(0, 80))
    if kind == "list":
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["text", "id", "title", "date", "x"]): _json_value(rng, depth + 1)}


def _record(rng: random.Random) -> Any:
    """A record-ish JSON value: good, missing or odd fields, or not an object at all."""
    shape = rng.randrange(10)
    if shape == 0:
        return _json_value(rng)  # anything
    record: dict[str, Any] = {"text": KOREAN * rng.randint(1, 3)}
    for field in ("id", "title", "date", "source", "url", "reporter"):
        if rng.random() < 0.5:
            record[field] = _json_value(rng) if rng.random() < 0.5 else f"{field}-{rng.random()}"
    if shape == 1:
        del record["text"]
    elif shape == 2:
        record["text"] = _json_value(rng)
    elif shape == 3:
        record["text"] = "   \n\t "
    return record


def write_corpus(folder: Path, seed: int) -> list[Path]:
    """Hostile files under ``folder``; returns the ones `rag index` should consider."""
    rng = random.Random(seed)
    folder.mkdir()
    files: dict[str, bytes] = {
        "random.txt": rng.randbytes(3000),
        "random-high.md": bytes(rng.randrange(128, 256) for _ in range(3000)),
        "empty.txt": b"",
        "blank.txt": b" \n\t\r\n  ",
        "nul.txt": KOREAN.encode() + b"\x00" + KOREAN.encode(),
        "utf8.txt": (KOREAN * 3).encode(),
        "utf8-bom.txt": b"\xef\xbb\xbf" + (KOREAN * 3).encode(),
        "cp949.txt": (KOREAN * 3).encode("cp949"),
        "euc-kr.md": (KOREAN * 3).encode("euc_kr"),
        "utf16-bom.txt": (KOREAN * 3).encode("utf-16"),
        "utf16-be-bom.txt": b"\xfe\xff" + (KOREAN * 3).encode("utf-16-be"),
        "utf16-no-bom.txt": (KOREAN * 3).encode("utf-16-le"),
        "utf32.txt": (KOREAN * 3).encode("utf-32"),
        "latin1.txt": (ENGLISH * 20).encode("latin-1"),
        "bad-bom.txt": b"\xff\xfe" + b"\x00\xd8" * 10,  # UTF-16 BOM, lone surrogates
        "mixed.txt": (KOREAN * 2).encode() + (KOREAN * 2).encode("cp949"),
        "huge-line.txt": (KOREAN * 400).encode(),  # one line of 45,000 characters
        "huge-word.txt": ("가" * 4000).encode(),
        "many-lines.txt": ("\n".join([KOREAN] * 300)).encode(),
        "controls.txt": (KOREAN + "\x1b[2J\x1b]0;t\x07\x07\x08\r" + KOREAN).encode(),
        "page.html": f"<html><body><p>{KOREAN * 3}</p></body></html>".encode(),
        "garbage.html": rng.randbytes(500).replace(b"\x00", b"<"),
        "tags.htm": b"<html><script>" + b"<div>" * 3000 + b"</script>",
        "empty.html": b"",
        "array.json": json.dumps([_record(rng) for _ in range(8)]).encode(),
        "object.json": json.dumps(_record(rng)).encode(),
        "scalar.json": b"42",
        "null.json": b"null",
        "string.json": b'"text"',
        "empty-array.json": b"[]",
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
        "broken.json": b'{"text": "unterminated',
        "records.jsonl": "\n".join(
            json.dumps(_record(rng), ensure_ascii=rng.random() < 0.5) for _ in range(40)
        ).encode(),
        "deep.jsonl": b'{"text": "\xec\x95\x88"}\n' + b"[" * 50_000 + b"\n{bad json}\n",
        "cp949.jsonl": json.dumps({"text": KOREAN * 2}, ensure_ascii=False).encode("cp949"),
        "bom.jsonl": b"\xef\xbb\xbf" + json.dumps({"id": 1, "text": KOREAN}).encode(),
        "u2028.jsonl": json.dumps(
            {"text": KOREAN + "\u2028" + KOREAN}, ensure_ascii=False
        ).encode(),
        # odd but valid names
        "with space and ✓ 한글.txt": (KOREAN * 2).encode(),
        "-starts-with-dash.txt": (KOREAN + "대시").encode(),
        "esc\x1b[2J\x1b]0;title\x07.txt": (KOREAN + "이스케이프").encode(),
        "new\nline.txt": (KOREAN + "줄바꿈").encode(),
        ("l" * 240) + ".txt": (KOREAN + "긴 이름").encode(),
        "UPPER.TXT": (KOREAN + "대문자").encode(),
        "no-extension": (KOREAN * 2).encode(),  # ignored in a folder walk
        ".hidden.txt": (KOREAN * 2).encode(),  # ignored in a folder walk
        "data.csv": b"a,b\n1,2\n",  # ignored in a folder walk
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "sub.txt").mkdir()  # a folder with a file extension
    (folder / "sub.txt" / "inner.txt").write_bytes((KOREAN + "안쪽").encode())
    os.symlink(folder, folder / "loop")  # a symlink back up the tree
    os.symlink(folder / "missing-target.txt", folder / "dangling.txt")
    ignored = {"no-extension", ".hidden.txt", "data.csv", "dangling.txt"}
    considered = [folder / n for n in files if n not in ignored]
    return [*considered, folder / "sub.txt" / "inner.txt"]


@pytest.mark.parametrize("seed", [1, 2])
def test_hostile_folder_indexes_without_traceback(tmp_path: Path, seed: int) -> None:
    files = write_corpus(tmp_path / "in", seed)
    index = Index.create(tmp_path / "idx", embedder="fake")
    report = index.add([tmp_path / "in"])  # must not raise

    indexed = {d.path for d in index.documents()}
    # A JSONL line is named by its line (feed.jsonl:3).
    named = {re.sub(r":\d+$", "", s.path) for s in [*report.skipped, *report.duplicates]}
    for f in files:
        path = str(f.resolve())
        assert path in indexed or path in named, f"{f.name!r} neither indexed nor reported"
    assert report.added, "the good files were indexed"
    for s in report.skipped:
        assert s.reason and "Traceback" not in s.reason

    # The same folder again through the CLI (nothing changed, so nothing is chunked again):
    # one line per skipped file, its name shown (control characters removed), exit 0 or 1,
    # never an exception.
    result = CliRunner().invoke(
        app, ["index", str(tmp_path / "in"), "--index", str(tmp_path / "idx")]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1)
    assert "Traceback" not in result.output
    for s in report.skipped:
        assert terminal_text(relative(s.path)) in result.output, s.path


def test_non_utf8_file_name(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.txt").write_bytes((KOREAN * 2).encode())
    odd = os.fsdecode(b"bad\xff\xfe.txt")
    (folder / odd).write_bytes((KOREAN + "이상한 이름").encode())
    report = Index.create(tmp_path / "idx", embedder="fake").add([folder])
    accounted = len(report.added) + len(report.skipped)
    assert accounted == 2 and len(report.added) == 2


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
RECORD_FIELDS = st.sampled_from(["text", "id", "title", "date", "source", "url", "reporter"])
RECORDS = st.one_of(
    JSON,
    st.dictionaries(RECORD_FIELDS, JSON, max_size=7),
    st.dictionaries(RECORD_FIELDS, st.text(max_size=200), max_size=7),
)


# Derandomized: the same examples every run (CI stays reproducible), none saved to disk.
@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(records=st.lists(RECORDS, max_size=5))
def test_any_json_records_give_articles_or_reasons(records: list[Any]) -> None:
    results = list(articles_from_records(records, origin="fuzz"))
    assert len(results) == len(records)
    for record, result in zip(records, results, strict=True):
        if isinstance(result, Skipped):
            assert result.path == "fuzz" and result.reason
        else:
            assert isinstance(result, Article) and result.text.strip()
            assert isinstance(record, dict) and isinstance(record.get("text"), str)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".txt", ".md", ".json", ".jsonl"]))
def test_any_bytes_in_any_file_type(tmp_path: Path, data: bytes, suffix: str) -> None:
    f = tmp_path / f"fuzz{suffix}"
    f.write_bytes(data)
    for result in load(f):
        assert result.path == str(f.resolve())
        if isinstance(result, Skipped):
            assert result.reason


def test_lone_surrogate_in_a_json_record(tmp_path: Path) -> None:
    # JSON may escape half of a surrogate pair ("\ud800"): such text cannot be encoded.
    folder = tmp_path / "in"
    folder.mkdir()
    record = {"id": "s", "title": "제목", "text": KOREAN + " \\ud800 끝."}
    (folder / "odd.jsonl").write_text(json.dumps(record, ensure_ascii=False).replace("\\\\", "\\"))
    (folder / "good.txt").write_bytes((KOREAN * 2).encode())
    report = Index.create(tmp_path / "idx", embedder="fake").add([folder])
    assert len(report.added) + len(report.skipped) == 2 and len(report.added) >= 1
