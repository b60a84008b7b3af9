"""`rag ask` and `rag chat` with an OpenAI-compatible server on 127.0.0.1 (fake embedder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import Index
from rag.chat import ChatSession
from rag.repl import run
from tests.conftest import SEEDS, FakeGenerator
from tests.llm_server import LLMServer, break_stream, closed_port_url, reply, status

QUESTION = "카카오엔터프라이즈 영업손실은 얼마나 늘었나?"


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    shutil.copytree(SEEDS, tmp_path / "articles")
    Index.create(tmp_path / "idx", embedder="fake").add([tmp_path / "articles"])
    return tmp_path / "idx"


def ask(index_dir: Path, base_url: str, *extra: str) -> tuple[int, str, str]:
    from rag.cli import app

    args = ["ask", QUESTION, "--index", str(index_dir), "--llm", "openai", "--model", "m"]
    result = CliRunner().invoke(app, [*args, "--base-url", base_url, *extra])
    return result.exit_code, result.stdout, result.stderr


def test_ask_streams_the_llm_answer_with_checked_citations(
    index_dir: Path, llm_server: LLMServer
) -> None:
    llm_server.queue(reply("영업손실 폭이 1406억원으로 증가했다 [1][7]."))
    code, out, err = ask(index_dir, llm_server.base_url)
    assert code == 0, err
    assert out.startswith("영업손실 폭이 1406억원으로 증가했다 [1][7].\nSources:\n  [1] ")
    assert "note: removed citation [7]: no such passage" in out
    request = llm_server.requests[0]
    assert request.model == "m" and request.stream is True
    assert "<passages>\n[1] " in request.messages[1]["content"]


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (status(401), "rejected the API key (401)"),
        (status(503, times=None), "(503)"),
    ],
)
def test_llm_failures_end_in_one_line(
    index_dir: Path, llm_server: LLMServer, behaviour: object, message: str
) -> None:
    llm_server.queue(behaviour)
    code, out, err = ask(index_dir, llm_server.base_url, "--timeout", "5")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_unreachable_server(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_LLM_MAX_RETRIES", "0")
    code, out, err = ask(index_dir, closed_port_url())
    assert code == 1 and out == ""
    assert err.startswith("error: cannot reach the LLM server at ") and err.count("\n") == 1


def test_broken_stream_is_shown_as_incomplete(index_dir: Path, llm_server: LLMServer) -> None:
    llm_server.queue(break_stream(2, ["영업손실 폭이 ", "1406억원으로 ", "증가했다 [1]."]))
    code, out, err = ask(index_dir, llm_server.base_url)
    assert code == 1
    assert out == "영업손실 폭이 1406억원으로 \n[answer incomplete]\n"
    assert err.startswith("error: the LLM stream broke after ") and "incomplete" in err


def test_ctrl_c_cancels_the_answer_not_the_session(
    index_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Interrupted(FakeGenerator):
        def stream(self, messages, *, question="", passages=()):  # type: ignore[no-untyped-def]
            yield "영업손실 폭이"
            raise KeyboardInterrupt

    session = ChatSession(Index.open(index_dir), Interrupted())
    lines = iter([QUESTION, "/sources", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))

    def show(stream):  # type: ignore[no-untyped-def]
        for piece in stream:
            print(piece, end="")
        return stream.answer

    run(session, show, lambda answer: print("SOURCES"))
    out = capsys.readouterr().out
    assert "영업손실 폭이\n[answer cancelled]\n" in out
    assert "No answer yet." in out  # the cancelled answer was not recorded
    assert session.turns == []
