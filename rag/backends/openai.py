"""Any OpenAI-compatible chat server (OpenAI, vLLM, Ollama, llama.cpp) through the `openai` SDK.

Failures become one `LLMError` each. Rate limits (429), server errors (5xx), timeouts and
refused connections are first retried by the SDK itself, ``max_retries`` times with
exponential backoff (0.5 s doubling up to 8 s, with jitter) or the server's
``retry-after-ms`` / ``Retry-After`` when that is positive and at most two minutes.

A streamed answer is bounded four ways: ``max_tokens`` is sent, so a looping model stops;
a server that ignores it is cut off after `CHARS_PER_TOKEN` characters a token, as if it had
said ``length``; ``deadline`` limits the whole answer's wall-clock time (the per-read
``timeout`` never fires while tokens or keep-alives keep arriving), also while pieces keep
coming; and a server saying its context is exceeded gets the kind ``context``, which
`rag.answer` answers by retrying with fewer passages. `generate` (the chat's rewrite, the
judge) reads the same stream, so the same bounds hold for it. A piece of a shape no server
should send (a choice that is not an object, content that is not text) breaks the stream
with the kind ``stream``; an event with no choices (usage, keep-alive) is skipped.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable, InvalidOption, LLMError
from ..generate import Cutoff, Generator, Message
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
# Room for the four cited sentences the prompt asks for, in Korean (about one token a
# syllable), with some to spare; a model that loops stops here.
DEFAULT_MAX_TOKENS = 512
# The whole answer, prompt processing included: a 1.5B model on two CPU cores needs about
# a minute for a 5-passage prompt and 512 tokens (docs/local-llm.md).
DEFAULT_DEADLINE = 300.0
# A reply longer than this many characters a token of max_tokens is cut as "length": a
# server that ignores max_tokens cannot fill memory. A token is about one Hangul syllable or
# four Latin letters; 16 leaves room for runs of spaces and long words.
CHARS_PER_TOKEN = 16
# Streamed events waiting to be read; the reader thread waits while this many are.
STREAM_BUFFER = 256
# finish_reason values that end a whole answer, and those that cut it short ("max_tokens":
# Anthropic-style servers). Any other ("abort" from vLLM, "error" from OpenRouter, a tool
# call nobody asked for) means the answer did not finish.
_FINISHED = frozenset({"stop", "eos", "eos_token", "stop_sequence", "end_turn"})
_CUT_SHORT = {"length": "length", "max_tokens": "length", "content_filter": "content_filter"}
# The context assumed when none is configured: small, so a prompt fits most servers
# (llama.cpp and Ollama often run with 4096); raise it for large-context models.
DEFAULT_CONTEXT_TOKENS = 4096
# How servers word "the prompt is longer than my context" (OpenAI, vLLM, llama.cpp, TGI).
_CONTEXT_EXCEEDED = re.compile(
    r"context.{0,20}(length|size|window)|exceed.{0,30}context|context_length_exceeded"
    r"|too many tokens|input is too long|maximum.{0,20}tokens",
    re.IGNORECASE,
)
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
        timeout: Seconds to wait for the server: to connect and for each streamed piece
            (slow local models may need more than the default 60).
        max_retries: Retries after a rate limit, server error, timeout or refused connection.
        temperature: Sampling temperature; ``None`` leaves it to the server.
        max_tokens: The most tokens an answer may have (default 512).
        deadline: Seconds an answer may take in all (default 300).
        context_tokens: The model's context, prompt and answer together (default 4096);
            the passages are cut to fit it.

    Raises:
        BackendUnavailable: The ``openai`` package is missing.
        InvalidOption: A timeout, retry count, token count or deadline (argument or
            variable) is not valid.
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
        max_tokens: int | None = None,
        deadline: float | None = None,
        context_tokens: int | None = None,
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
        self.max_tokens = _count("max_tokens", max_tokens, "RAG_LLM_MAX_TOKENS", DEFAULT_MAX_TOKENS)
        self.context_tokens = _count(
            "context_tokens", context_tokens, "RAG_LLM_CONTEXT", DEFAULT_CONTEXT_TOKENS
        )
        self.deadline = _number("deadline", deadline, "RAG_LLM_DEADLINE", DEFAULT_DEADLINE)
        if not self.deadline > 0:
            raise InvalidOption("deadline", self.deadline, ["a positive number of seconds"])
        try:
            self._client = OpenAI(
                base_url=self.base_url,
                api_key=key,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        except Exception as e:  # httpx's InvalidURL ("http://h:abc/v1"), whatever its module
            if type(e).__name__ != "InvalidURL":
                raise
            raise InvalidOption("base_url", self.base_url, [f"a URL ({e})"]) from None

    def stream(
        self, messages: list[Message], *, question: str = "", passages: Sequence[Hit] = ()
    ) -> Iterator[str]:
        """Yield the answer as the server streams it; reasoning deltas are left out.

        The request runs in a thread so that the deadline holds even while the server
        sends nothing but keep-alives. A ``length`` or ``content_filter`` finish, or a reply
        past `CHARS_PER_TOKEN` characters a token of ``max_tokens``, ends the stream with a
        `Cutoff`.

        Raises:
            LLMError: The request failed, the deadline passed (kind ``timeout``) or the
                stream broke (kind ``stream``: malformed, cut off, or finished for a reason
                other than a whole answer) after the pieces already yielded.
        """

        events: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=STREAM_BUFFER)
        stopping = threading.Event()
        opened: list[Any] = []

        def put(event: tuple[str, Any]) -> bool:
            """Hand ``event`` to the reader of the answer; False once it stopped reading."""
            while not stopping.is_set():
                try:
                    events.put(event, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                response = self._client.chat.completions.create(
                    **self._request(messages), stream=True
                )
            except BaseException as e:
                put(("failed", e))
                return
            opened.append(response)
            if stopping.is_set():  # the deadline passed while the server was connecting
                response.close()
                return
            try:
                with response:  # closes the connection when the answer is not read to its end
                    for chunk in response:
                        if not put(("chunk", chunk)):
                            return
                put(("end", None))
            except BaseException as e:
                put(("broken", e))

        worker = threading.Thread(target=read, name="rag-llm-stream", daemon=True)
        ends = time.monotonic() + self.deadline
        limit = CHARS_PER_TOKEN * (self.max_tokens or DEFAULT_MAX_TOKENS)
        received = 0
        finished: str | None = None
        worker.start()
        try:
            while finished not in _CUT_SHORT:
                left = ends - time.monotonic()
                if left <= 0:
                    raise self._overdue(received)
                try:
                    what, value = events.get(timeout=left)
                except queue.Empty:
                    raise self._overdue(received) from None
                if what == "end":
                    break
                if what != "chunk":
                    raise self._stream_error(value, received, what == "failed") from value
                try:
                    deltas = _deltas(value)
                except ValueError as e:
                    raise self._redacted(_broken(received, _why(e, self.timeout))) from None
                for reason, piece in deltas:
                    finished = reason or finished
                    piece = piece[: limit - received]
                    if piece:
                        received += len(piece)
                        yield piece
                    if received >= limit:
                        finished = "length"  # the server ignored max_tokens
                        break
        finally:
            stopping.set()
            for response in opened:  # unblocks the reader if it is waiting for data
                response.close()
        if finished is None:
            raise _broken(received, "the server ended it without a finish_reason")
        if finished in _CUT_SHORT:
            yield Cutoff(_CUT_SHORT[finished])
        elif finished not in _FINISHED:
            raise _broken(received, f"the server ended it with finish_reason {finished!r}")

    def _overdue(self, received: int) -> LLMError:
        kept = f"; the {received} characters received are incomplete" if received else ""
        return self._redacted(
            LLMError(
                "timeout",
                f"the answer from {self.base_url} took longer than {self.deadline:g} s "
                f"(--deadline){kept}",
            )
        )

    def _stream_error(self, e: BaseException, received: int, failed: bool) -> BaseException:
        """The `LLMError` for a request that ``failed``, or for a stream that broke."""
        import openai

        if failed:
            return self._llm_error(e) if isinstance(e, openai.OpenAIError) else e
        if received == 0 and isinstance(e, openai.APITimeoutError):
            return self._llm_error(e, retried=False)
        if isinstance(e, Exception):  # the SDK's errors, ValueError for malformed SSE, ...
            return self._redacted(_broken(received, _why(e, self.timeout)))
        return e

    def generate(
        self, messages: list[Message], *, question: str = "", passages: Sequence[Hit] = ()
    ) -> str:
        """The whole answer, read from the same stream as `stream` (so the deadline, the
        length bound and the checks on what the server sends hold for it too).

        Raises:
            LLMError: The request failed, the deadline passed or the stream broke.
        """
        pieces = list(self.stream(messages))
        cut = next((p.reason for p in pieces if isinstance(p, Cutoff)), None)
        if cut:
            log.info("%s stopped the answer early (finish_reason %s)", self.model, cut)
        return "".join(pieces)

    def _request(self, messages: list[Message]) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        }
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if self.max_tokens:
            request["max_tokens"] = self.max_tokens
        return request

    def _llm_error(self, e: openai.OpenAIError, retried: bool = True) -> LLMError:
        """`_describe`, `_redacted`."""
        return self._redacted(self._describe(e, retried))

    def _redacted(self, error: LLMError) -> LLMError:
        """``error`` with the key, bearer tokens and URL credentials redacted: a server's
        401 body may echo the key, and ``--base-url`` may hold ``user:key@``."""
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
            if code in (400, 413) and _CONTEXT_EXCEEDED.search(detail):
                return LLMError(
                    "context", f"{where} says the prompt exceeds its context ({code}): {detail}"
                )
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


def _deltas(chunk: Any) -> list[tuple[str | None, str]]:
    """The (finish_reason, text) of each choice of a streamed chunk. A chunk without choices
    (a usage report, an event of another kind) has none.

    Raises:
        ValueError: The chunk has a shape no server should send.
    """
    choices = getattr(chunk, "choices", None)
    if choices is None:
        error = getattr(chunk, "error", None)
        if error:
            raise ValueError(f"an error event: {error}")
        return []
    if not isinstance(choices, list):
        raise ValueError(f"choices is {type(choices).__name__}, not a list")
    out = []
    for choice in choices:
        if not hasattr(choice, "delta") and not hasattr(choice, "finish_reason"):
            raise ValueError(f"a choice is {type(choice).__name__}, not an object")
        reason = getattr(choice, "finish_reason", None)
        delta = getattr(choice, "delta", None)
        text = getattr(delta, "content", None) if delta is not None else None
        if not isinstance(reason, str | None) or not isinstance(text, str | None):
            raise ValueError("a finish_reason or content that is not text")
        out.append((reason, text or ""))
    return out


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _count(option: str, explicit: int | None, variable: str, default: int) -> int:
    """A positive whole number: ``explicit``, else ``$variable``, else ``default``."""
    value = _number(option, explicit, variable, default)
    if value != int(value) or value < 1:
        raise InvalidOption(option, value, ["a whole number, 1 or more"])
    return int(value)


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
