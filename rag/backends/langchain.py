"""Any LangChain chat model (``BaseChatModel``) as a `Generator`.

Not in the name registry, since it needs a model object::

    from langchain_openai import ChatOpenAI
    generator = LangChainGenerator(model=ChatOpenAI(model="gpt-4o-mini"))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable, InvalidOption, LLMError
from ..generate import Generator, Message
from ..records import Hit

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage

INSTALL = "pip install langchain-core"

# LangChain passes the provider SDK's exceptions through unchanged; the SDKs most models
# use (openai, anthropic, groq, mistral...) name them alike, so the class name tells the kind.
_KINDS = (
    ("Timeout", "timeout"),
    ("Connect", "unreachable"),
    ("Authentication", "auth"),
    ("PermissionDenied", "auth"),
    ("RateLimit", "rate_limit"),
    ("BadRequest", "bad_request"),
    ("NotFound", "bad_request"),
    ("UnprocessableEntity", "bad_request"),
)


class LangChainGenerator(Generator):
    """Answers from a LangChain chat model.

    Args:
        model: Any ``langchain_core.language_models.BaseChatModel``.

    Raises:
        BackendUnavailable: ``langchain-core`` is missing.
        TypeError: ``model`` is not a LangChain chat model.
    """

    name = "langchain"

    def __init__(self, model: BaseChatModel) -> None:
        try:
            from langchain_core.language_models import BaseChatModel
        except ImportError as e:
            raise BackendUnavailable(f"langchain-core is not installed: {INSTALL}") from e
        if not isinstance(model, BaseChatModel):
            raise TypeError(f"model must be a LangChain BaseChatModel, not {type(model).__name__}")
        self.model = model

    def stream(
        self, messages: list[Message], *, question: str = "", passages: Sequence[Hit] = ()
    ) -> Iterator[str]:
        """Yield the text of each chunk ``model.stream`` produces.

        Raises:
            LLMError: The model failed; after the first piece, kind ``stream``.
        """
        prompt = to_langchain(messages)
        received = 0
        try:
            for chunk in self.model.stream(prompt):
                piece = _text(chunk)
                if piece:
                    received += len(piece)
                    yield piece
        except Exception as e:  # whatever the provider raises; LLMError is the contract
            if received:
                raise LLMError(
                    "stream",
                    f"the LLM stream broke after {received} characters; the answer is "
                    f"incomplete ({self._describe(e)})",
                ) from e
            raise self._llm_error(e) from e

    def generate(
        self, messages: list[Message], *, question: str = "", passages: Sequence[Hit] = ()
    ) -> str:
        """The whole answer from ``model.invoke``.

        Raises:
            LLMError: The model failed.
        """
        prompt = to_langchain(messages)
        try:
            return _text(self.model.invoke(prompt))
        except Exception as e:  # whatever the provider raises; LLMError is the contract
            raise self._llm_error(e) from e

    def _llm_error(self, e: Exception) -> LLMError:
        name = type(e).__name__
        kind = next((kind for part, kind in _KINDS if part in name), "server")
        return LLMError(kind, f"LangChain model failed: {self._describe(e)}")

    def _describe(self, e: Exception) -> str:
        """``ChatOpenAI (gpt-4o-mini): RateLimitError: ...`` on one line."""
        label = self.model.get_name()
        model_id = getattr(self.model, "model_name", None) or getattr(self.model, "model", None)
        if isinstance(model_id, str):
            label += f" ({model_id})"
        text = " ".join(str(e).split())[:300] or "no message"
        return f"{label}: {type(e).__name__}: {text}"


def to_langchain(messages: list[Message]) -> list[BaseMessage]:
    """Our chat messages as LangChain ``SystemMessage`` / ``HumanMessage`` / ``AIMessage``."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    kinds: dict[str, Any] = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    for m in messages:
        if m["role"] not in kinds:
            raise InvalidOption("message role", m["role"], list(kinds))
    return [kinds[m["role"]](content=m["content"]) for m in messages]


def _text(message: BaseMessage) -> str:
    """The text of a message whose content is a string or a list of content blocks.

    (``message.text`` does this too, but is a method before langchain-core 1.0 and a
    property since.)
    """
    if isinstance(message.content, str):
        return message.content
    return "".join(
        block if isinstance(block, str) else str(block.get("text", ""))
        for block in message.content
        if isinstance(block, str) or block.get("type") == "text"
    )
