"""`LangChainGenerator` with LangChain's own fake chat models, and `RagRetriever` over an index."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    FakeMessagesListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGenerationChunk

from rag import Index
from rag.backends.langchain import LangChainGenerator
from rag.errors import InvalidOption, LLMError
from rag.generate import Message
from rag.integrations.langchain import RagRetriever
from tests.conftest import FLITTO, KAKAO, ROOT

MESSAGES: list[Message] = [
    {"role": "system", "content": "기사에 근거해서만 답하라."},
    {"role": "user", "content": "카카오엔터프라이즈는 왜 구조조정을 하나?"},
    {"role": "assistant", "content": "어떤 기사를 말하나?"},
    {"role": "user", "content": "2023년 5월 기사."},
]
ANSWER = "클라우드 중심 재편 [1]."


class Recorder(BaseCallbackHandler):
    """Keeps the messages each chat model call received."""

    def __init__(self) -> None:
        self.calls: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        self.calls.extend(messages)


def test_generate_invokes_the_model_with_converted_messages() -> None:
    recorder = Recorder()
    model = FakeListChatModel(responses=[ANSWER], callbacks=[recorder])
    assert LangChainGenerator(model=model).generate(MESSAGES) == ANSWER
    [sent] = recorder.calls
    assert [type(m) for m in sent] == [SystemMessage, HumanMessage, AIMessage, HumanMessage]
    assert [m.content for m in sent] == [m["content"] for m in MESSAGES]


def test_stream_yields_the_model_chunks() -> None:
    recorder = Recorder()
    model = FakeListChatModel(responses=[ANSWER], callbacks=[recorder])
    pieces = list(LangChainGenerator(model=model).stream(MESSAGES))
    assert pieces == list(ANSWER)  # FakeListChatModel streams one character per chunk
    assert isinstance(recorder.calls[0][0], SystemMessage)


def test_content_blocks_are_joined_as_text() -> None:
    blocks: list[str | dict[str, Any]] = [
        {"type": "text", "text": "클라우드 "},
        {"type": "image", "url": "https://example.invalid/x.png"},
        "재편",
    ]
    model = FakeMessagesListChatModel(responses=[AIMessage(content=blocks)] * 2)
    generator = LangChainGenerator(model=model)
    assert generator.generate(MESSAGES) == "클라우드 재편"
    # without its own _stream, a model streams its whole answer as one chunk
    assert list(generator.stream(MESSAGES)) == ["클라우드 재편"]


def test_generic_fake_model_streams_by_words() -> None:
    model = GenericFakeChatModel(messages=iter([ANSWER]))
    generator = LangChainGenerator(model=model)
    assert list(generator.stream(MESSAGES)) == ["클라우드", " ", "중심", " ", "재편", " ", "[1]."]


def test_a_model_failing_mid_stream_raises_a_stream_error() -> None:
    model = FakeListChatModel(responses=[ANSWER], error_on_chunk_number=3)
    received: list[str] = []
    with pytest.raises(LLMError) as caught:
        for piece in LangChainGenerator(model=model).stream(MESSAGES):
            received.append(piece)
    assert received == list(ANSWER[:3])
    assert caught.value.kind == "stream"
    assert str(caught.value).startswith("the LLM stream broke after 3 characters;")
    assert "FakeListChatModelError" in str(caught.value)


class RateLimitError(Exception):
    """Named like the openai/anthropic SDK's exception."""


class Failing(FakeListChatModel):
    def _call(self, *args: Any, **kwargs: Any) -> str:
        raise RateLimitError("slow down")

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        raise RateLimitError("slow down")


@pytest.mark.parametrize("method", ["generate", "stream"])
def test_provider_errors_become_llm_errors(method: str) -> None:
    generator = LangChainGenerator(model=Failing(responses=["x"]))
    with pytest.raises(LLMError) as caught:
        if method == "generate":
            generator.generate(MESSAGES)
        else:
            list(generator.stream(MESSAGES))
    assert caught.value.kind == "rate_limit"
    assert str(caught.value) == ("LangChain model failed: Failing: RateLimitError: slow down")


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="BaseChatModel"):
        LangChainGenerator(model="gpt-4o-mini")  # type: ignore[arg-type]
    generator = LangChainGenerator(model=FakeListChatModel(responses=["x"]))
    with pytest.raises(InvalidOption, match="invalid message role 'tool'"):
        generator.generate([{"role": "tool", "content": "x"}])  # type: ignore[typeddict-item]


@pytest.fixture
def index(seeds: Path) -> Index:
    index = Index.create(embedder="fake")
    index.add([seeds])
    return index


def test_retriever_returns_documents_with_hit_metadata(index: Index) -> None:
    docs = RagRetriever(index=index, k=2).invoke("카카오엔터프라이즈 구조조정")
    assert len(docs) == 2 and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    hit = index.search("카카오엔터프라이즈 구조조정", k=1)[0]
    assert top.page_content == hit.text
    assert top.id == hit.chunk_id
    assert top.metadata == {
        "doc_id": KAKAO,
        "chunk_id": hit.chunk_id,
        "title": hit.title,
        "date": hit.date.isoformat() if hit.date else None,
        "source": hit.source,
        "reporter": "고민서",
        "path": hit.path,
        "url": hit.url,
        "score": hit.score,
        "start": hit.start,
        "end": hit.end,
    }
    assert top.metadata["date"] == "2023-05-16"


def test_retriever_respects_k_and_filters(index: Index) -> None:
    retriever = RagRetriever.from_path(k=1)
    assert len(retriever.invoke("카카오엔터프라이즈 구조조정")) == 1
    everything = RagRetriever(index=index, k=50).invoke("기업")
    assert {d.metadata["doc_id"] for d in everything} == {KAKAO, FLITTO}
    assert len(everything) == index.info().chunks
    # the Flitto article names its outlet but no date; the Kakao one is dated 2023-05-16
    by_source = RagRetriever(index=index, k=50, source="디지털데일리").invoke("기업")
    assert by_source and {d.metadata["doc_id"] for d in by_source} == {FLITTO}
    in_may = RagRetriever(index=index, k=50, since="2023-05-01", until="2023-05-31")
    assert {d.metadata["doc_id"] for d in in_may.invoke("기업")} == {KAKAO}
    assert RagRetriever(index=index, since="2100-01-01").invoke("기업") == []


def test_importing_rag_does_not_import_langchain() -> None:
    code = (
        "import sys, rag, rag.generate, rag.backends.openai, rag.backends.langchain; "
        "print(sorted(m for m in sys.modules if m.startswith(('langchain', 'openai'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
