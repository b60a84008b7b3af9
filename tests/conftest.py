"""Shared fixtures: a deterministic fake embedder and state isolated in tmp_path."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from rag.backends import register_backend
from rag.embed import Embedder
from rag.generate import Generator, Message

pytest_plugins = ["tests.llm_server"]

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "examples" / "articles"
KAKAO = "004_9dd825083520fc60"
FLITTO = "000_53a2b83788777dff"
KORQUAD = ROOT / "evals" / "korquad" / "KorQuAD_v1.0_dev.json"


def korquad_paragraphs(paragraphs: int) -> tuple[list[dict], list[tuple[str, str]]]:
    """The first ``paragraphs`` KorQuAD dev paragraphs as JSONL records (``kq-AAA-PP`` ids),
    and their questions with the id of the paragraph that answers each."""
    data = json.loads(KORQUAD.read_text(encoding="utf-8"))["data"]
    records, questions = [], []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            doc_id = f"kq-{a:03d}-{p:02d}"
            records.append({"id": doc_id, "title": article["title"], "text": para["context"]})
            questions.extend((qa["question"], doc_id) for qa in para["qas"])
    kept = {r["id"] for r in records[:paragraphs]}
    return records[:paragraphs], [(q, d) for q, d in questions if d in kept]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The onnx model directory for the Ray and Milvus suites and the seed-baseline test:
    ``$RAG_TEST_MODEL_DIR`` (CI passes the one its first command built), else built once for
    the session (test_model_runtime's own fixture always builds one: it tests the build)."""
    given = os.environ.get("RAG_TEST_MODEL_DIR")
    if given and (Path(given) / "onnx" / "model_qint8.onnx").is_file():
        return Path(given)
    from rag import model

    return model.install(tmp_path_factory.mktemp("model") / "e5")


class FakeEmbedder(Embedder):
    """Hashes character bigrams into a small vector: deterministic, instant, and similar
    texts get similar vectors, which is all the index logic needs."""

    model_id = "fake/bigram-hash"
    max_tokens = 512

    def __init__(self, variant: str | None = None, **options: object) -> None:
        self.variant = variant or "a"
        self.spec = "fake" if self.variant == "a" else f"fake:{self.variant}"
        self.dim = 64
        self.calls = 0

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for a, b in itertools.pairwise(text):
                h = hashlib.md5(f"{self.variant}{a}{b}".encode()).digest()
                out[row, h[0] % self.dim] += 1.0
            out[row, 0] += 1e-3  # never all zero
        return out

    def count_tokens(self, text: str) -> int:
        return 2 + len(text.split()) + len(text) // 8


def default_sigint() -> None:
    """``preexec_fn`` for a child process a test sends SIGINT (Ctrl-C) to. A shell that starts
    the test run in the background leaves SIGINT ignored in every child, and Python then
    never raises KeyboardInterrupt; a user's terminal delivers it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every piece of state at tmp_path and register the fake backend."""
    monkeypatch.setenv("RAG_INDEX", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_MODEL_DIR", str(tmp_path / "models"))  # no installed runtime
    monkeypatch.setenv("RAG_MODEL_AUTO_BUILD", "0")  # ... and none built on the fly
    monkeypatch.setenv("RAG_HISTORY", str(tmp_path / "history"))
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("RAG_EMBEDDER", raising=False)
    monkeypatch.delenv("RAG_STORE", raising=False)  # the tests' indexes are directories
    register_backend("fake", FakeEmbedder)


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    """A copy of the two bundled seed articles in a folder of their own."""
    folder = tmp_path / "articles"
    shutil.copytree(SEEDS, folder)
    return folder


class FakeGenerator(Generator):
    """Replies from a queue and records the messages it was sent."""

    name = "fake-llm"

    def __init__(self, *replies: str | list[str]) -> None:
        self.replies = list(replies)
        self.calls: list[list[Message]] = []

    def stream(self, messages, *, question="", passages=()):  # type: ignore[no-untyped-def]
        self.calls.append(messages)
        reply = self.replies.pop(0)
        yield from [reply] if isinstance(reply, str) else reply
