"""The `Generator` interface: chat messages in, text or a stream of text out.

Backends live in `rag/backends/`, one file each: ``extractive`` (offline, the default),
``openai`` (any OpenAI-compatible server) and ``langchain`` (any LangChain chat model);
`rag.backends.get_generator` builds one by name.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Literal, TypedDict

from .records import Hit


class Message(TypedDict):
    """One chat message, as the OpenAI chat API spells it."""

    role: Literal["system", "user", "assistant"]
    content: str


class Cutoff(str):
    """The last, empty piece of a stream whose model stopped before the answer was done.

    ``reason`` is the server's ``finish_reason`` (``length``, ``content_filter``). Being an
    empty string, it changes nothing for a caller that just joins the pieces.
    """

    reason: str

    def __new__(cls, reason: str) -> Cutoff:
        piece = super().__new__(cls, "")
        piece.reason = reason
        return piece


class Generator(ABC):
    """Base class; backends implement `stream`, and `generate` joins it.

    Both take the rendered chat ``messages``; ``question`` and the numbered ``passages``
    (passage n is ``passages[n - 1]``) are passed too, for backends that work on them
    directly instead of on the prompt (the extractive answerer).
    """

    name: str = "generator"
    #: Whether the backend can rewrite a follow-up question from the chat history.
    can_condense: bool = True
    #: Whether a finished answer with no text means that nothing in the passages answers
    #: (the extractive answerer's way of refusing). A model's empty reply is no answer.
    silence_refuses: bool = False
    #: The model's context in tokens, prompt and answer together (``None``: no limit), and
    #: the most tokens it may answer with; the passages shown are cut to fit both.
    context_tokens: int | None = None
    max_tokens: int | None = None

    @abstractmethod
    def stream(
        self, messages: list[Message], *, question: str = "", passages: Sequence[Hit] = ()
    ) -> Iterator[str]:
        """Yield the answer's text in pieces.

        The last piece may be a `Cutoff` saying why the model stopped early.

        Raises:
            LLMError: The model failed; pieces already yielded are an incomplete answer.
        """

    def generate(
        self, messages: list[Message], *, question: str = "", passages: Sequence[Hit] = ()
    ) -> str:
        """The whole answer as one string."""
        return "".join(self.stream(messages, question=question, passages=passages))


def llm_name(explicit: str | None = None) -> str:
    """Which answerer to use: ``explicit``, else ``$RAG_LLM``, else ``openai`` when an LLM
    endpoint or model is configured (``$RAG_LLM_BASE_URL``, ``$RAG_LLM_MODEL``), else
    ``extractive``."""
    if explicit:
        return explicit
    if os.environ.get("RAG_LLM"):
        return os.environ["RAG_LLM"]
    if os.environ.get("RAG_LLM_BASE_URL") or os.environ.get("RAG_LLM_MODEL"):
        return "openai"
    return "extractive"
