"""A scriptable OpenAI-compatible chat server on 127.0.0.1, for driving the real SDK in tests.

Each test queues behaviours; every request to ``POST /v1/chat/completions`` takes the next one
(a behaviour with ``times=None`` stays at the head of the queue and answers every later
request). With nothing queued the server answers 400 so an unscripted call fails fast instead
of being retried. Every request is recorded.

    def test_retry(llm_server):
        llm_server.queue(status(429, headers={"retry-after-ms": "10"}), reply("답"))
        ...
        assert len(llm_server.requests) == 2

The ``llm_server`` fixture below is shared by ``pytest_plugins = ["tests.llm_server"]`` in
``tests/conftest.py``; without that line, a test module wraps the `LLMServer` context manager
in a fixture of its own (importing the fixture instead trips ruff's F401/F811).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

CREATED = 1_700_000_000


@dataclass
class Reply:
    """A 200 answer, streamed or not as the request asks.

    ``chunks`` are the streamed content pieces, sent ``pace`` seconds apart after the
    ``reasoning`` pieces (``delta.reasoning_content``, as llama.cpp and vLLM stream a
    thinking model's reasoning). A chunk may be followed by a stall (silent, or with an SSE
    keep-alive comment every ``keepalive`` seconds), the connection may be cut, garbage may
    be sent, or the stream may end cleanly but without ``finish_reason`` / ``[DONE]``.
    """

    text: str
    chunks: tuple[str, ...]
    finish_reason: str | None = "stop"
    done: bool = True
    cut_after: int | None = None  # close the socket after this many content chunks
    garbage_after: int | None = None  # send a malformed SSE event after this many
    stall_after: int | None = None  # go quiet for `stall` seconds after this many
    stall: float = 0.0
    keepalive: float = 0.0
    pace: float = 0.0
    reasoning: tuple[str, ...] = ()
    raw: tuple[Any, ...] = ()  # events sent as they are before the content (odd shapes)
    times: int | None = 1


@dataclass
class Status:
    """An HTTP error answer with a JSON (or plain text) body."""

    code: int
    body: Any
    headers: dict[str, str]
    times: int | None = 1


@dataclass
class Delay:
    """Wait before answering (no headers are sent meanwhile), then behave like ``then``."""

    seconds: float
    then: Reply | Status
    times: int | None = 1


Behaviour = Reply | Status | Delay


def reply(
    text: str, chunks: Sequence[str] | None = None, *, times: int | None = 1, **options: Any
) -> Reply:
    """Answer ``text``; streamed as ``chunks`` (default: one chunk per 3 characters)."""
    pieces = tuple(chunks) if chunks is not None else _split(text)
    if "".join(pieces) != text:
        raise ValueError("chunks must join to text")
    return Reply(text, pieces, times=times, **options)


def status(
    code: int,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    times: int | None = 1,
) -> Status:
    """Answer HTTP ``code``; the default body is OpenAI's error JSON."""
    if body is None:
        body = {"error": {"message": f"scripted error {code}", "type": "test", "code": code}}
    return Status(code, body, dict(headers or {}), times=times)


def delay(seconds: float, then: Reply | Status | None = None, *, times: int | None = 1) -> Delay:
    """Say nothing for ``seconds``, then answer ``then`` (default: a short reply)."""
    return Delay(seconds, then if then is not None else reply("늦은 답"), times=times)


def loop(sentence: str, copies: int = 40) -> Reply:
    """A model stuck repeating ``sentence`` until its token limit."""
    return reply(sentence * copies, [sentence] * copies, finish_reason="length")


# How servers say a prompt is longer than their context, as 400 bodies.
CONTEXT_ERRORS = {
    "openai": {
        "error": {
            "message": "This model's maximum context length is 4096 tokens. However, your "
            "messages resulted in 5120 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    },
    "vllm": {
        "object": "error",
        "message": "This model's maximum context length is 4096 tokens. However, you requested "
        "5632 tokens (5120 in the messages, 512 in the completion).",
        "type": "BadRequestError",
        "code": 400,
    },
    "llama.cpp": {
        "error": {
            "code": 400,
            "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error",
        }
    },
}


def context_exceeded(server: str = "llama.cpp") -> Status:
    """A 400 saying the prompt does not fit, worded as ``server`` words it."""
    return status(400, CONTEXT_ERRORS[server])


def break_stream(after_chunks: int, chunks: Sequence[str] = ("하나", "둘", "셋", "넷")) -> Reply:
    """Stream ``after_chunks`` pieces, then close the socket without ending the body."""
    return reply("".join(chunks), chunks, cut_after=after_chunks)


def _split(text: str) -> tuple[str, ...]:
    return tuple(text[i : i + 3] for i in range(0, len(text), 3)) or ("",)


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", []) if isinstance(self.body, dict) else []

    @property
    def stream(self) -> bool:
        return bool(isinstance(self.body, dict) and self.body.get("stream"))

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class LLMServer:
    """The server; ``base_url`` is ready once the context manager is entered."""

    host: str = "127.0.0.1"
    requests: list[Recorded] = field(default_factory=list)
    _script: deque[Behaviour] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _httpd: _Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://{self.host}:{self._httpd.server_address[1]}/v1"

    def queue(self, *behaviours: Behaviour) -> None:
        """Append behaviours to the script."""
        with self._lock:
            self._script.extend(behaviours)

    def _next(self, request: Recorded) -> Behaviour:
        with self._lock:
            self.requests.append(request)
            if not self._script:
                return status(400, {"error": {"message": "llm_server: nothing scripted"}})
            head = self._script[0]
            if head.times is not None:
                head.times -= 1
                if head.times <= 0:
                    self._script.popleft()
            return head

    def __enter__(self) -> LLMServer:
        handler = type("Handler", (_Handler,), {"llm": self})
        self._httpd = _Server((self.host, 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # wakes handlers sleeping in a Delay or a stall
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still sleeping in a Delay does not hold up shutdown

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients hang up: that's fine
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked bodies, like real servers
    llm: LLMServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        behaviour = self.llm._next(request)
        if self.path.rstrip("/") != "/v1/chat/completions":
            behaviour = status(404, {"error": {"message": f"no route {self.path}"}})
        if isinstance(behaviour, Delay):
            if self.llm._stopping.wait(behaviour.seconds):
                return
            behaviour = behaviour.then
        try:
            if isinstance(behaviour, Status):
                self._status(behaviour)
            elif request.stream:
                self._stream(behaviour, request.model or "test-model")
            else:
                self._complete(behaviour, request.model or "test-model")
        except (BrokenPipeError, ConnectionResetError):  # the client gave up first
            self.close_connection = True

    def _send_json(self, code: int, payload: Any, headers: dict[str, str]) -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _status(self, behaviour: Status) -> None:
        self._send_json(behaviour.code, behaviour.body, behaviour.headers)

    def _complete(self, behaviour: Reply, model: str) -> None:
        message = {"role": "assistant", "content": behaviour.text, "refusal": None}
        if behaviour.reasoning:
            message["reasoning_content"] = "".join(behaviour.reasoning)
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": behaviour.finish_reason,
        }
        payload = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [choice],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        self._send_json(200, payload, {})

    def _stream(self, behaviour: Reply, model: str) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self._event(_chunk(model, {"role": "assistant", "content": ""}, None))
        for thought in behaviour.reasoning:
            self._event(_chunk(model, {"reasoning_content": thought}, None))
        for event in behaviour.raw:
            self._event(event)
        for n, piece in enumerate(behaviour.chunks):
            if n == behaviour.cut_after:
                self.connection.shutdown(socket.SHUT_RDWR)  # mid-body: no terminating chunk
                self.close_connection = True
                return
            if n == behaviour.garbage_after:
                self._write(b'data: {"id": "chatcmpl-test", "choices": [\n\n')
            if n == behaviour.stall_after and self._stall(behaviour):
                return
            if n and behaviour.pace and self.llm._stopping.wait(behaviour.pace):
                return
            self._event(_chunk(model, {"content": piece}, None))
        if behaviour.finish_reason is not None:
            self._event(_chunk(model, {}, behaviour.finish_reason))
        if behaviour.done:
            self._write(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _stall(self, behaviour: Reply) -> bool:
        """Go quiet (but for keep-alives) for the stall; True when the server is stopping."""
        if not behaviour.keepalive:
            return self.llm._stopping.wait(behaviour.stall)
        ends = time.monotonic() + behaviour.stall
        while time.monotonic() < ends:
            self._write(b": keep-alive\n\n")
            if self.llm._stopping.wait(behaviour.keepalive):
                return True
        return False

    def _event(self, payload: dict[str, Any]) -> None:
        self._write(f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode())

    def _write(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    """A running `LLMServer`, stopped after the test."""
    with LLMServer() as server:
        yield server
