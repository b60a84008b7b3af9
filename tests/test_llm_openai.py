"""`OpenAIGenerator` through the real openai SDK against a scripted server on 127.0.0.1."""

from __future__ import annotations

import time
import types
from typing import Any

import pytest

from rag.backends import get_generator
from rag.backends.openai import OpenAIGenerator
from rag.errors import InvalidOption, LLMError
from rag.generate import Cutoff, Message
from tests.llm_server import (
    CONTEXT_ERRORS,
    Behaviour,
    LLMServer,
    break_stream,
    closed_port_url,
    context_exceeded,
    delay,
    reply,
    status,
)

MESSAGES: list[Message] = [
    {"role": "system", "content": "기사에 근거해서만 답하라."},
    {"role": "user", "content": "카카오엔터프라이즈는 왜 구조조정을 하나?"},
    {"role": "assistant", "content": "어떤 기사를 말하나?"},
    {"role": "user", "content": "2023년 5월 기사."},
]
ANSWER = "클라우드와 AI 중심으로 사업을 재편하기 위해서다 [1]."
FAST = {"retry-after-ms": "10"}  # the SDK honours it, so retries take 10 ms, not 0.5 s+


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "RAG_LLM",
        "RAG_LLM_MODEL",
        "RAG_LLM_BASE_URL",
        "RAG_LLM_API_KEY",
        "RAG_LLM_TIMEOUT",
        "RAG_LLM_MAX_RETRIES",
        "RAG_LLM_MAX_TOKENS",
        "RAG_LLM_DEADLINE",
        "RAG_LLM_CONTEXT",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_CUSTOM_HEADERS",
    ):
        monkeypatch.delenv(name, raising=False)


def make(server: LLMServer, **options: Any) -> OpenAIGenerator:
    options = {"base_url": server.base_url, "model": "test-model", "api_key": "sk-test"} | options
    return OpenAIGenerator(**options)


def test_generate_sends_one_streaming_request(llm_server: LLMServer) -> None:
    """`generate` reads a stream, so that the deadline and the length bound hold for it
    (a non-streaming body trickled a byte a second outlasted both)."""
    llm_server.queue(reply(ANSWER))
    assert make(llm_server).generate(MESSAGES) == ANSWER
    [request] = llm_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.model == "test-model"
    assert request.messages == MESSAGES
    assert request.stream is True
    assert request.body["temperature"] == 0
    assert request.authorization == "Bearer sk-test"


def test_stream_yields_the_pieces_in_order(llm_server: LLMServer) -> None:
    chunks = ["클라우드와 ", "AI 중심으로 ", "사업을 재편하기 위해서다 [1]."]
    llm_server.queue(reply("".join(chunks), chunks))
    assert list(make(llm_server, temperature=0.7).stream(MESSAGES)) == chunks
    [request] = llm_server.requests
    assert request.stream is True
    assert request.messages == MESSAGES
    assert request.body["temperature"] == 0.7


def test_temperature_none_is_left_to_the_server(llm_server: LLMServer) -> None:
    llm_server.queue(reply("답"))
    make(llm_server, temperature=None).generate(MESSAGES)
    assert "temperature" not in llm_server.requests[0].body


def test_no_key_sends_a_placeholder(llm_server: LLMServer) -> None:
    llm_server.queue(reply("답"))
    make(llm_server, api_key=None).generate(MESSAGES)
    assert llm_server.requests[0].authorization == "Bearer not-needed"


def test_get_generator_builds_it_from_the_environment(
    llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_LLM_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("RAG_LLM_MODEL", "qwen2.5:7b")
    llm_server.queue(reply("답"))
    generator = get_generator()
    assert isinstance(generator, OpenAIGenerator)
    assert generator.generate(MESSAGES) == "답"
    assert llm_server.requests[0].model == "qwen2.5:7b"


def test_rag_variables_win_over_openai_ones(
    llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", closed_port_url())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("RAG_LLM_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("RAG_LLM_API_KEY", "sk-rag")
    monkeypatch.setenv("RAG_LLM_MODEL", "env-model")
    monkeypatch.setenv("RAG_LLM_TIMEOUT", "7.5")
    monkeypatch.setenv("RAG_LLM_MAX_RETRIES", "0")
    llm_server.queue(reply("답"))
    generator = OpenAIGenerator()
    assert (generator.timeout, generator.max_retries) == (7.5, 0)
    assert generator.generate(MESSAGES) == "답"
    [request] = llm_server.requests
    assert (request.model, request.authorization) == ("env-model", "Bearer sk-rag")


def test_openai_variables_are_used_when_rag_ones_are_unset(
    llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    llm_server.queue(reply("답"))
    generator = OpenAIGenerator()
    assert (generator.model, generator.timeout, generator.max_retries) == ("gpt-4o-mini", 60, 2)
    generator.generate(MESSAGES)
    assert llm_server.requests[0].authorization == "Bearer sk-openai"
    assert llm_server.requests[0].model == "gpt-4o-mini"


def test_arguments_win_over_the_environment(
    llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_LLM_BASE_URL", closed_port_url())
    monkeypatch.setenv("RAG_LLM_API_KEY", "sk-rag")
    monkeypatch.setenv("RAG_LLM_MODEL", "env-model")
    monkeypatch.setenv("RAG_LLM_TIMEOUT", "7.5")
    monkeypatch.setenv("RAG_LLM_MAX_RETRIES", "5")
    llm_server.queue(reply("답"))
    generator = make(llm_server, api_key="sk-arg", model="arg-model", timeout=3, max_retries=1)
    assert (generator.timeout, generator.max_retries) == (3, 1)
    generator.generate(MESSAGES)
    [request] = llm_server.requests
    assert (request.model, request.authorization) == ("arg-model", "Bearer sk-arg")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RAG_LLM_TIMEOUT", "soon", "invalid RAG_LLM_TIMEOUT 'soon'; valid: a number"),
        ("RAG_LLM_TIMEOUT", "0", "invalid timeout 0.0; valid: a positive number of seconds"),
        ("RAG_LLM_MAX_RETRIES", "1.5", "invalid max_retries 1.5; valid: a whole number"),
        ("RAG_LLM_MAX_RETRIES", "-1", "invalid max_retries -1.0; valid: a whole number"),
        ("RAG_LLM_MAX_TOKENS", "0", "invalid max_tokens 0.0; valid: a whole number, 1 or more"),
        ("RAG_LLM_MAX_TOKENS", "many", "invalid RAG_LLM_MAX_TOKENS 'many'; valid: a number"),
        ("RAG_LLM_CONTEXT", "4k", "invalid RAG_LLM_CONTEXT '4k'; valid: a number"),
        ("RAG_LLM_DEADLINE", "-5", "invalid deadline -5.0; valid: a positive number"),
        ("RAG_LLM_BASE_URL", "http://h:abc/v1", "invalid base_url 'http://h:abc/v1'; valid: a URL"),
        ("RAG_LLM_BASE_URL", "http://[::1", "invalid base_url 'http://[::1'; valid: a URL"),
    ],
)
def test_bad_numbers_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidOption) as caught:
        OpenAIGenerator()
    assert message in str(caught.value)


# (id, script, timeout, max_retries, expected kind, expected message parts, requests made)
FAILURES: list[tuple[str, list[Behaviour], float, int, str, list[str], int]] = [
    ("401", [status(401, {"error": {"message": "Incorrect API key"}})], 5, 2, "auth",
     ["{url} (model 'test-model') rejected the API key (401): Incorrect API key",
      "set RAG_LLM_API_KEY or OPENAI_API_KEY"], 1),
    ("403", [status(403)], 5, 2, "auth", ["rejected the API key (403)"], 1),
    ("429 forever", [status(429, headers=FAST, times=None)], 5, 2, "rate_limit",
     ["{url} (model 'test-model') is rate limiting requests (429) (tried 3 times)",
      "scripted error 429"], 3),
    ("503 forever", [status(503, {"detail": "model is loading"}, headers=FAST, times=None)],
     5, 2, "server", ["{url} (model 'test-model') failed (503) (tried 3 times): model is loading"],
     3),
    ("404 model", [status(404, {"error": {"message": "The model `test-model` does not exist"}})],
     5, 2, "bad_request",
     ["refused the request (404): The model `test-model` does not exist"], 1),
    ("400 vllm", [status(400, {"object": "error", "message": "max_tokens too large"})], 5,
     2, "bad_request", ["refused the request (400): max_tokens too large"], 1),
    # timeouts are retried too, after 0.375-0.5 s of backoff (no Retry-After to honour)
    ("timeout", [delay(2, times=None)], 0.3, 1, "timeout",
     ["LLM at {url} did not answer within 0.3 s (tried 2 times)"], 2),
]  # fmt: skip


@pytest.mark.parametrize("method", ["generate", "stream"])
@pytest.mark.parametrize(
    ("script", "timeout", "retries", "kind", "parts", "requests"),
    [pytest.param(*row[1:], id=row[0]) for row in FAILURES],
)
def test_failures_become_one_llm_error(
    llm_server: LLMServer,
    method: str,
    script: list[Behaviour],
    timeout: float,
    retries: int,
    kind: str,
    parts: list[str],
    requests: int,
) -> None:
    llm_server.queue(*script)
    generator = make(llm_server, timeout=timeout, max_retries=retries)
    with pytest.raises(LLMError) as caught:
        if method == "generate":
            generator.generate(MESSAGES)
        else:
            list(generator.stream(MESSAGES))
    assert caught.value.kind == kind
    message = str(caught.value)
    for part in parts:
        assert part.format(url=llm_server.base_url) in message
    assert "\n" not in message and "Traceback" not in message
    assert len(llm_server.requests) == requests


@pytest.mark.parametrize("method", ["generate", "stream"])
def test_unreachable_server(method: str) -> None:
    url = closed_port_url()
    generator = OpenAIGenerator(base_url=url, max_retries=1)
    with pytest.raises(LLMError) as caught:
        if method == "generate":
            generator.generate(MESSAGES)
        else:
            list(generator.stream(MESSAGES))
    assert caught.value.kind == "unreachable"
    assert str(caught.value).startswith(f"cannot reach the LLM server at {url}: ")
    assert "Connection refused" in str(caught.value)


@pytest.mark.parametrize(
    "first",
    [status(429, headers=FAST), status(500, headers=FAST), delay(2)],
    ids=["429", "500", "timeout"],
)
def test_one_failure_then_success_is_retried(llm_server: LLMServer, first: Behaviour) -> None:
    llm_server.queue(first, reply(ANSWER))
    started = time.perf_counter()
    assert make(llm_server, timeout=0.3, max_retries=1).generate(MESSAGES) == ANSWER
    assert len(llm_server.requests) == 2
    assert [r.headers.get("x-stainless-retry-count") for r in llm_server.requests] == ["0", "1"]
    assert time.perf_counter() - started < 2


def test_retry_after_is_honoured(llm_server: LLMServer) -> None:
    llm_server.queue(status(429, headers={"retry-after-ms": "300"}), reply(ANSWER))
    started = time.perf_counter()
    assert make(llm_server).generate(MESSAGES) == ANSWER
    assert 0.3 <= time.perf_counter() - started < 1.5


def test_max_retries_zero_fails_at_once(llm_server: LLMServer) -> None:
    llm_server.queue(status(503, headers=FAST), reply(ANSWER))
    with pytest.raises(LLMError) as caught:
        make(llm_server, max_retries=0).generate(MESSAGES)
    assert caught.value.kind == "server"
    assert "tried" not in str(caught.value)
    assert len(llm_server.requests) == 1


# (script, timeout, pieces received before the error, why)
BROKEN: list[tuple[str, Behaviour, list[str], str]] = [
    ("connection closed", break_stream(2, ["클라우드와 ", "AI 중심", "으로 재편"]),
     ["클라우드와 ", "AI 중심"], "incomplete chunked read"),
    ("malformed SSE", reply("ab" * 3, ["ab"] * 3, garbage_after=2), ["ab", "ab"],
     "malformed data from the server"),
    ("no finish_reason", reply("abcdef", finish_reason=None, done=False), ["abc", "def"],
     "the server ended it without a finish_reason"),
    ("stalled", reply("abcdef", stall_after=1, stall=2), ["abc"], "no data for 0.3 s"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("script", "pieces", "why"), [pytest.param(*row[1:], id=row[0]) for row in BROKEN]
)
def test_a_broken_stream_fails_after_the_pieces_received(
    llm_server: LLMServer, script: Behaviour, pieces: list[str], why: str
) -> None:
    llm_server.queue(script)
    received: list[str] = []
    with pytest.raises(LLMError) as caught:
        for piece in make(llm_server, timeout=0.3).stream(MESSAGES):
            received.append(piece)
    assert received == pieces
    assert caught.value.kind == "stream"
    n = len("".join(pieces))
    assert str(caught.value).startswith(
        f"the LLM stream broke after {n} characters; the answer is incomplete ("
    )
    assert why in str(caught.value)
    assert len(llm_server.requests) == 1  # a half-read stream is never retried


def test_stopping_early_closes_the_stream(llm_server: LLMServer) -> None:
    llm_server.queue(reply("abcdefghi"), reply("다음"))
    generator = make(llm_server)
    stream = generator.stream(MESSAGES)
    assert isinstance(stream, types.GeneratorType)
    assert next(stream) == "abc"
    stream.close()
    assert generator.generate(MESSAGES) == "다음"


# -- bounds on an answer: max_tokens, a deadline, how the model stopped ---------------------


def test_max_tokens_is_sent(llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    llm_server.queue(reply("답", times=3))
    make(llm_server).generate(MESSAGES)
    list(make(llm_server, max_tokens=64).stream(MESSAGES))
    monkeypatch.setenv("RAG_LLM_MAX_TOKENS", "128")
    make(llm_server).generate(MESSAGES)
    assert [r.body["max_tokens"] for r in llm_server.requests] == [512, 64, 128]


@pytest.mark.parametrize(
    "script",
    [
        # tokens keep coming, each well within the per-read timeout
        reply("가" * 60, ["가"] * 60, pace=0.1),
        # the server sends nothing but keep-alive comments
        reply("가나다", ["가", "나", "다"], stall_after=1, stall=10, keepalive=0.2),
        # the server is still processing the prompt: not even headers yet
        delay(10),
    ],
    ids=["slow tokens", "keep-alives", "no headers"],
)
def test_the_deadline_bounds_the_whole_answer(llm_server: LLMServer, script: Behaviour) -> None:
    llm_server.queue(script)
    generator = make(llm_server, timeout=5, deadline=1, max_retries=0)
    received: list[str] = []
    started = time.perf_counter()
    with pytest.raises(LLMError) as caught:
        for piece in generator.stream(MESSAGES):
            received.append(piece)
    assert time.perf_counter() - started < 2
    assert caught.value.kind == "timeout"
    message = str(caught.value)
    assert message.startswith(f"the answer from {llm_server.base_url} took longer than 1 s")
    if received:
        assert message.endswith(f"the {len(''.join(received))} characters received are incomplete")
    assert "\n" not in message


def test_the_deadline_holds_while_pieces_keep_coming_faster_than_they_are_read(
    llm_server: LLMServer,
) -> None:
    """A server streaming faster than its reader always had a piece waiting, and the
    deadline was only looked at when none was."""
    llm_server.queue(reply("가나" * 3000, ["가나"] * 3000))
    generator = make(llm_server, deadline=0.5, max_retries=0)
    started = time.perf_counter()
    with pytest.raises(LLMError) as caught:
        for _ in generator.stream(MESSAGES):
            time.sleep(0.002)  # a slow reader: a terminal, a chat printing the answer
    assert caught.value.kind == "timeout"
    assert time.perf_counter() - started < 2


def test_a_server_ignoring_max_tokens_is_cut_off(llm_server: LLMServer) -> None:
    """A reply far longer than max_tokens allows ends as if the server had said length,
    instead of filling memory until it stops."""
    llm_server.queue(reply("가나다라마바사아 " * 5000, ["가나다라마바사아 "] * 5000))
    pieces = list(make(llm_server, max_tokens=8).stream(MESSAGES))
    text = "".join(pieces)
    assert len(text) == 16 * 8 and text.startswith("가나다라마바사아 ")
    assert isinstance(pieces[-1], Cutoff) and pieces[-1].reason == "length"


@pytest.mark.parametrize(
    "event",
    [
        {"id": "x", "choices": ["가나다"]},  # a choice that is a string
        {"id": "x", "choices": [{"index": 0, "delta": {"content": 5}, "finish_reason": None}]},
        {"id": "x", "choices": [{"index": 0, "delta": {"content": ["a"]}}]},
        {"id": "x", "error": {"message": "model crashed"}},  # an error event, no choices
    ],
    ids=["string choice", "number content", "list content", "error event"],
)
def test_a_malformed_piece_breaks_the_stream_in_one_line(
    llm_server: LLMServer, event: dict[str, Any]
) -> None:
    """Chunks of shapes no server should send raised TypeError or AttributeError out of
    rag ask, rag chat and rag eval."""
    llm_server.queue(reply(ANSWER, raw=(event,)))
    with pytest.raises(LLMError) as caught:
        list(make(llm_server, max_retries=0).stream(MESSAGES))
    assert caught.value.kind == "stream"
    assert "\n" not in str(caught.value)


def test_an_event_without_choices_is_skipped(llm_server: LLMServer) -> None:
    """A usage report or an event of another kind carries no piece of the answer."""
    events = ({"id": "x", "choices": []}, {"id": "x", "choices": None}, {"id": "x", "usage": {}})
    llm_server.queue(reply(ANSWER, raw=events))
    assert "".join(make(llm_server).stream(MESSAGES)) == ANSWER


@pytest.mark.parametrize("reason", ["abort", "error", "tool_calls"])
def test_a_finish_for_another_reason_is_not_a_whole_answer(
    llm_server: LLMServer, reason: str
) -> None:
    """vLLM's abort and OpenRouter's error ended answers that were then taken as whole."""
    llm_server.queue(reply("영업손실은", finish_reason=reason))
    with pytest.raises(LLMError) as caught:
        list(make(llm_server).stream(MESSAGES))
    assert caught.value.kind == "stream"
    assert repr(reason) in str(caught.value)


def test_generate_is_held_to_the_deadline(llm_server: LLMServer) -> None:
    """The chat's rewrite and the judge waited for a slow server past --deadline (the
    per-read timeout restarts with every byte of a trickled body)."""
    llm_server.queue(delay(3))
    started = time.perf_counter()
    with pytest.raises(LLMError) as caught:
        make(llm_server, timeout=10, deadline=0.5, max_retries=0).generate(MESSAGES)
    assert caught.value.kind == "timeout"
    assert time.perf_counter() - started < 2


def test_errors_of_a_stream_do_not_show_url_credentials(llm_server: LLMServer) -> None:
    """The CLI redacted these again, but the Python API raised them as they were."""
    llm_server.queue(delay(3))
    url = llm_server.base_url.replace("http://", "http://alice:hunter2-secret@")
    with pytest.raises(LLMError) as caught:
        list(make(llm_server, base_url=url, deadline=0.5, max_retries=0).stream(MESSAGES))
    assert caught.value.kind == "timeout"
    assert "hunter2-secret" not in str(caught.value)


def test_a_fast_answer_is_not_held_to_the_deadline(llm_server: LLMServer) -> None:
    llm_server.queue(reply(ANSWER))
    assert "".join(make(llm_server, deadline=5).stream(MESSAGES)) == ANSWER


@pytest.mark.parametrize("reason", ["length", "content_filter"])
def test_a_cut_answer_ends_with_a_cutoff(llm_server: LLMServer, reason: str) -> None:
    llm_server.queue(reply("영업손실은", finish_reason=reason))
    pieces = list(make(llm_server).stream(MESSAGES))
    assert "".join(pieces) == "영업손실은"
    assert isinstance(pieces[-1], Cutoff) and pieces[-1].reason == reason


def test_a_finished_answer_has_no_cutoff(llm_server: LLMServer) -> None:
    llm_server.queue(reply(ANSWER))
    assert not any(isinstance(p, Cutoff) for p in make(llm_server).stream(MESSAGES))


def test_reasoning_deltas_are_not_the_answer(llm_server: LLMServer) -> None:
    llm_server.queue(reply(ANSWER, reasoning=("The user asks why. ", "Passage 1 says...")))
    assert "".join(make(llm_server).stream(MESSAGES)) == ANSWER


@pytest.mark.parametrize("server", sorted(CONTEXT_ERRORS))
@pytest.mark.parametrize("method", ["generate", "stream"])
def test_a_context_overflow_has_its_own_kind(
    llm_server: LLMServer, server: str, method: str
) -> None:
    llm_server.queue(context_exceeded(server))
    with pytest.raises(LLMError) as caught:
        if method == "generate":
            make(llm_server).generate(MESSAGES)
        else:
            list(make(llm_server).stream(MESSAGES))
    assert caught.value.kind == "context"
    assert "says the prompt exceeds its context (400)" in str(caught.value)
