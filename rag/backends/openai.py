"""Any OpenAI-compatible chat server (OpenAI, vLLM, Ollama, llama.cpp) through the `openai` SDK.

Failures become one `LLMError` each. Rate limits (429), server errors (5xx), timeouts and
refused connections are first retried by the SDK itself, ``max_retries`` times with
exponential backoff (0.5 s doubling up to 8 s, with jitter) or the server's
``retry-after-ms`` / ``Retry-After`` when that is positive and at most two minutes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable, InvalidOption, LLMError
from ..generate import Generator, Message
from ..records import Hit
from ..sanitize import redact

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

INSTALL = "pip install openai"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
# Local servers (Ollama, vLLM, llama.cpp) accept any key, but the SDK refuses to build a
# client without one; a placeholder lets them work with no configuration, and a server that
# does check keys answers 401, which `_llm_error` turns into "set RAG_LLM_API_KEY".
NO_KEY = "not-needed"


class OpenAIGenerator(Generator):
    """Chat completions from an OpenAI-compatible server.

    Each option is taken from the argument, else from ``$RAG_LLM_<OPTION>``, else (base URL
    and key only) from the SDK's own ``$OPENAI_BASE_URL`` / ``$OPENAI_API_KEY``, else the
    default.

    Args:
        model: Model name (default ``gpt-4o-mini``).
        base_url: Server URL including ``/v1`` (default: OpenAI's).
        api_key: API key; local servers need none.
        timeout: Seconds to wait for the server: to connect, for each streamed piece, and
            for the whole answer of a non-streaming `generate` (slow local models may need
            more than the default 60).
        max_retries: Retries after a rate limit, server error, timeout or refused connection.
        temperature: Sampling temperature; ``None`` leaves it to the server.

    Raises:
        BackendUnavailable: The ``openai`` package is missing.
        InvalidOption: A timeout or retry count (argument or variable) is not valid.
    """

    name = "openai"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        temperature: float | None = 0.0,
    ) -> None:
        try:
            from openai import OpenAI
        except ImportError as e:
            raise BackendUnavailable(f"the openai package is not installed: {INSTALL}") from e
        self.model = model or _env("RAG_LLM_MODEL") or DEFAULT_MODEL
        self.base_url = (
            base_url or _env("RAG_LLM_BASE_URL") or _env("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        )
        key = api_key or _env("RAG_LLM_API_KEY") or _env("OPENAI_API_KEY") or NO_KEY
        self.timeout = _number("timeout", timeout, "RAG_LLM_TIMEOUT", DEFAULT_TIMEOUT)
        if not self.timeout > 0:
            raise InvalidOption("timeout", self.timeout, ["a positive number of seconds"])
        retries = _number("max_retries", max_retries, "RAG_LLM_MAX_RETRIES", DEFAULT_MAX_RETRIES)
        if retries != int(retries) or retries < 0:
            raise InvalidOption("max_retries", retries, ["a whole number, 0 or more"])
        self.max_retries = int(retries)
        self.temperature = temperature
        self._client = OpenAI(
            base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=self.max_retries
        )

    def stream(
        self, messages: list[Message], *, question: str = "", passages: Sequence[Hit] = ()
    ) -> Iterator[str]:
        """Yield the answer as the server streams it.

        Raises:
            LLMError: The request failed, or the stream broke (kind ``stream``) after the
                pieces already yielded.
        """
        import openai

        try:
            response = self._client.chat.completions.create(**self._request(messages), stream=True)
        except openai.OpenAIError as e:
            raise self._llm_error(e) from e
        received = 0
        finished = False
        with response:  # closes the connection if the caller stops reading early
            try:
                for chunk in response:
                    for choice in chunk.choices:
                        if choice.finish_reason is not None:
                            finished = True
                            _warn_if_cut(choice.finish_reason, self.model)
                        piece = choice.delta.content
                        if piece:
                            received += len(piece)
                            yield piece
            except (openai.OpenAIError, ValueError) as e:  # ValueError: malformed SSE JSON
                if received == 0 and isinstance(e, openai.APITimeoutError):
                    raise self._llm_error(e, retried=False) from e
                raise _broken(received, _why(e, self.timeout)) from e
        if not finished:
            raise _broken(received, "the server ended it without a finish_reason")

    def generate(
        self, messages: list[Message], *, question: str = "", passages: Sequence[Hit] = ()
    ) -> str:
        """The whole answer from one non-streaming request.

        Raises:
            LLMError: The request failed.
        """
        import openai

        try:
            completion = self._client.chat.completions.create(
                **self._request(messages), stream=False
            )
        except openai.OpenAIError as e:
            raise self._llm_error(e) from e
        if not completion.choices:
            raise LLMError("server", f"LLM at {self.base_url} returned no answer ({self.model})")
        choice = completion.choices[0]
        _warn_if_cut(choice.finish_reason, self.model)
        return choice.message.content or ""

    def _request(self, messages: list[Message]) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        }
        if self.temperature is not None:
            request["temperature"] = self.temperature
        return request

    def _llm_error(self, e: openai.OpenAIError, retried: bool = True) -> LLMError:
        """`_describe` with the key, bearer tokens and URL credentials redacted: a server's
        401 body may echo the key, and ``--base-url`` may hold ``user:key@``."""
        error = self._describe(e, retried)
        return LLMError(error.kind, redact(str(error), [self._client.api_key]))

    def _describe(self, e: openai.OpenAIError, retried: bool = True) -> LLMError:
        """The one-line error for a failed request (the SDK's retries, if any, are spent)."""
        import openai

        where = f"LLM server at {self.base_url} (model {self.model!r})"
        attempts = 1 + self.max_retries if retried else 1
        tried = f" (tried {attempts} times)" if attempts > 1 else ""
        # APITimeoutError subclasses APIConnectionError, so it is tested first.
        if isinstance(e, openai.APITimeoutError):
            return LLMError(
                "timeout", f"LLM at {self.base_url} did not answer within {self.timeout:g} s{tried}"
            )
        if isinstance(e, openai.APIConnectionError):
            cause = _one_line(str(e.__cause__ or e))
            return LLMError(
                "unreachable", f"cannot reach the LLM server at {self.base_url}: {cause}"
            )
        if isinstance(e, openai.APIStatusError):
            code = e.status_code
            detail = _server_message(e)
            if code in (401, 403):
                return LLMError(
                    "auth",
                    f"{where} rejected the API key ({code}): {detail}; "
                    "set RAG_LLM_API_KEY or OPENAI_API_KEY",
                )
            if code == 429:
                return LLMError(
                    "rate_limit", f"{where} is rate limiting requests (429){tried}: {detail}"
                )
            if code >= 500:
                return LLMError("server", f"{where} failed ({code}){tried}: {detail}")
            return LLMError("bad_request", f"{where} refused the request ({code}): {detail}")
        return LLMError("server", f"{where}: {_one_line(str(e))}")


def _broken(received: int, why: str) -> LLMError:
    return LLMError(
        "stream",
        f"the LLM stream broke after {received} characters; the answer is incomplete ({why})",
    )


def _why(e: Exception, timeout: float) -> str:
    import openai

    if isinstance(e, openai.APITimeoutError):
        return f"no data for {timeout:g} s"
    if isinstance(e, openai.APIConnectionError) and e.__cause__ is not None:
        return f"connection lost: {_one_line(str(e.__cause__))}"
    if isinstance(e, ValueError):
        return f"malformed data from the server: {_one_line(str(e))}"
    return _one_line(str(e))


def _server_message(e: openai.APIStatusError) -> str:
    """The message in an error body, whichever server shape it has (OpenAI, vLLM, Ollama)."""
    body: Any = e.body
    if isinstance(body, Mapping):
        body = body.get("message") or body.get("error") or body.get("detail") or body
        if isinstance(body, Mapping):
            body = body.get("message") or body
    if not body:
        body = e.response.text or e.response.reason_phrase
    return _one_line(str(body))


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _warn_if_cut(finish_reason: str | None, model: str) -> None:
    if finish_reason in ("length", "content_filter"):
        log.warning("%s stopped the answer early (finish_reason %s)", model, finish_reason)


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _number(option: str, explicit: float | None, variable: str, default: float) -> float:
    """``explicit``, else ``$variable`` parsed as a number, else ``default``."""
    if explicit is not None:
        return explicit
    raw = _env(variable)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidOption(variable, raw, ["a number"]) from None
