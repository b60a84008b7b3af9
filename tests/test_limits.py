"""Bounded work on unbounded input: long lines, long or empty queries, Ctrl-C during ingest."""

from __future__ import annotations

import itertools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rag import Index, korean
from rag.cli import app
from rag.errors import QueryTooLong, RagError
from rag.sanitize import MAX_QUERY_CHARS
from tests.conftest import ROOT, SEEDS, default_sigint

NEWS = (
    "카카오엔터프라이즈가 클라우드 사업에 집중한다. 인공지능 사업은 카카오브레인이 맡는다고 "
    '밝혔다. 이경진 신임 대표는 "수익 구조가 좋지 않았기 때문"이라고 말했다! '
)


class RecordingKiwi:
    """Kiwi, recording the longest text each call was given."""

    def __init__(self) -> None:
        self.real = korean.kiwi()
        self.longest = 0

    def _seen(self, text: Any) -> None:
        for t in [text] if isinstance(text, str) else text:
            self.longest = max(self.longest, len(t))

    def split_into_sents(self, text: str) -> Any:
        self._seen(text)
        return self.real.split_into_sents(text)

    def tokenize(self, text: Any) -> Any:
        self._seen(text)
        return self.real.tokenize(text)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch) -> RecordingKiwi:
    kiwi = RecordingKiwi()
    monkeypatch.setattr(korean, "kiwi", lambda: kiwi)
    return kiwi


def test_windows_cover_the_text_and_cut_after_sentences() -> None:
    text = NEWS * 200  # one line of 20,000+ characters
    spans = korean.windows(text)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a == prev_b for (_, prev_b), (a, _) in itertools.pairwise(spans))
    assert all(0 < b - a <= korean.WINDOW_CHARS for a, b in spans)
    for _, b in spans[:-1]:
        assert text[b - 2 : b] in (". ", "! "), text[b - 10 : b]  # after a sentence end
    no_spaces = "가" * 7000
    assert korean.windows(no_spaces) == [(0, 3000), (3000, 6000), (6000, 7000)]
    assert korean.windows("짧다") == [(0, 2)]


def test_a_long_line_reaches_kiwi_in_bounded_windows(recording: RecordingKiwi) -> None:
    line = NEWS * 100 + "가" * 7_000
    spans = korean.sentence_spans(f"제목\n{line}\n끝.")
    assert recording.longest <= korean.WINDOW_CHARS
    assert spans[0] == (0, 2) and spans[-1][1] == len(line) + 6
    terms = korean.morphemes_batch([line, "카카오"])
    assert recording.longest <= korean.WINDOW_CHARS
    assert terms[1] == ["카카오"] and terms[0].count("클라우드") == 100


def test_windows_do_not_change_the_sentences_of_a_long_line() -> None:
    line = NEWS * 80  # 7,000+ characters: three windows
    assert len(line) > 2 * korean.WINDOW_CHARS
    whole = [(s.start, s.end) for s in korean.kiwi().split_into_sents(line)]
    assert korean.sentence_spans(line) == whole


def test_short_lines_are_split_as_before() -> None:
    text = (SEEDS / "004_9dd825083520fc60.txt").read_text(encoding="utf-8")
    expected = []
    offset = 0
    for line in text.splitlines(keepends=True):
        lead = len(line) - len(line.lstrip())
        for s in korean.kiwi().split_into_sents(line.strip()) if line.strip() else []:
            start, end = offset + lead + s.start, offset + lead + s.end
            while end > start and text[end - 1].isspace():
                end -= 1
            expected.append((start, end))
        offset += len(line)
    assert korean.sentence_spans(text) == expected


# --- queries -----------------------------------------------------------------------------


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    Index.create(tmp_path / "idx", embedder="fake").add([SEEDS])
    return tmp_path / "idx"


@pytest.mark.parametrize("command", ["search", "ask"])
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "must not be empty"),
        ("  \t ", "must not be empty"),
        ("카" * (MAX_QUERY_CHARS + 1), "is 2,001 characters long; the limit is 2,000"),
        # The byte 0xff of an argument, as Python keeps it: Kiwi failed with a traceback.
        ("\udcff 카카오", "holds bytes that are not UTF-8 text"),
    ],
)
def test_empty_or_overlong_query_is_bad_usage(
    index_dir: Path, command: str, query: str, message: str
) -> None:
    result = CliRunner().invoke(app, [command, query, "--index", str(index_dir)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stdout == ""


def test_a_query_at_the_limit_is_answered(index_dir: Path) -> None:
    query = ("카카오엔터프라이즈 클라우드 " * 200)[:MAX_QUERY_CHARS]
    result = CliRunner().invoke(app, ["search", query, "--index", str(index_dir), "-k", "1"])
    assert result.exit_code == 0 and "1. " in result.stdout


def test_library_refuses_an_overlong_query(index_dir: Path) -> None:
    index = Index.open(index_dir)
    with pytest.raises(QueryTooLong, match="the query is 100,000 characters long"):
        index.search("가" * 100_000)
    with pytest.raises(QueryTooLong):
        index.ask("가" * 100_000)
    with pytest.raises(RagError, match="the query holds bytes that are not UTF-8 text"):
        index.search("\udcff 카카오")
    assert index.search("카카오", k=1)


def test_chat_refuses_an_overlong_question_and_goes_on(
    index_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rag import output
    from rag.chat import ChatSession
    from rag.repl import run

    index = Index.open(index_dir)
    lines = iter(["가" * 50_000, "\udcff", "카카오엔터프라이즈는 왜 구조조정되었나?", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    session = ChatSession(index, index.answerer("extractive"))
    run(session, output.stream_answer, output.print_sources)
    out = capsys.readouterr().out
    assert "error: the question is 50,000 characters long; the limit is 2,000\n" in out
    assert "error: the question holds bytes that are not UTF-8 text\n" in out
    assert len(session.turns) == 1  # the next question was answered


def test_cli_error_printer_redacts_secrets(
    index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "plain-configured-key")

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RagError(
            "failed at https://bob:hunter2secret@llm.example/v1 with plain-configured-key "
            "(Bearer abcdef123456, sk-proj-zzzzzzzzzz) \x1b]0;title\x07"
        )

    monkeypatch.setattr(Index, "search", fail)
    result = CliRunner().invoke(app, ["search", "카카오", "--index", str(index_dir)])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: failed at https://***@llm.example/v1 with *** (Bearer ***, sk-***) \n"
    )


# --- Ctrl-C ------------------------------------------------------------------------------

_RUN_CLI = (
    "from rag.backends import register_backend; from tests.conftest import FakeEmbedder; "
    "register_backend('fake', FakeEmbedder); from rag.cli import main; main()"
)


def test_ctrl_c_stops_indexing_a_huge_single_line_file(tmp_path: Path) -> None:
    # One 600,000-character line without a break: in one Kiwi call this takes many minutes
    # and Ctrl-C waits for all of them; in windows it stops within a second or two.
    (tmp_path / "huge.txt").write_text(NEWS[:40] + "가" * 600_000, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", _RUN_CLI, "index", str(tmp_path / "huge.txt")],
        cwd=tmp_path,
        preexec_fn=default_sigint,
        env={**env, "RAG_INDEX": str(tmp_path / "idx"), "RAG_EMBEDDER": "fake"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    # stderr is read to the end in a thread: a child blocked on a full pipe never exits.
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in process.stderr], daemon=True)
    reader.start()
    try:
        line = lines.get(timeout=120)
        while not line.startswith("read 1/1"):  # then chunking (Kiwi) starts
            line = lines.get(timeout=120)
        time.sleep(3)
        assert process.poll() is None, "finished before it could be interrupted"
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        code = process.wait(timeout=30)
        waited = time.monotonic() - sent
    finally:
        process.kill()
        process.wait()
    reader.join(10)
    rest = "".join(lines.queue)
    assert code == 130, rest
    assert waited < 10
