"""What small models really reply, through the openai backend and the answer checks:
reasoning, marker variants, refusals in other words, loops, cut answers, context overflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import Index
from rag.answer import REFUSALS, Answer, Claim, _pads, estimate_tokens, fit_passages
from rag.backends.openai import OpenAIGenerator
from rag.errors import LLMError
from rag.reply import LoopGuard, ReasoningFilter, is_refusal, normalize_markers, strip_reasoning
from tests.conftest import FLITTO, SEEDS
from tests.llm_server import LLMServer, context_exceeded, loop, reply

QUESTION = "카카오엔터프라이즈 영업손실"
LOSS = "영업손실 폭이 368억원에서 1406억원으로 3년 만에 4배나 증가했다"
TEMPLATES = list(REFUSALS.values())
LONG = "이 문장은 스무 글자를 넘는 긴 문장이다. 짧다. "


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RAG_LLM_MAX_TOKENS", "RAG_LLM_DEADLINE", "RAG_LLM_CONTEXT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def index(seeds: Path) -> Index:
    index = Index.create(embedder="fake")
    index.add([seeds])
    return index


def llm(server: LLMServer, **options: object) -> OpenAIGenerator:
    # A context with room for every passage (the recipe's llama-server runs with 8192): what
    # these tests check is the reply, not which passages fit; the context tests set their own.
    options.setdefault("context_tokens", 8192)
    return OpenAIGenerator(base_url=server.base_url, model="m", max_retries=0, **options)  # type: ignore[arg-type]


def loss_n(index: Index) -> int:
    """The number the Kakao passage holding the loss sentence gets for `QUESTION`."""
    hits = index.search(QUESTION, k=5)
    return next(n for n, h in enumerate(hits, 1) if LOSS in h.text)


def ask(index: Index, server: LLMServer, text: str, **options: object) -> Answer:
    server.queue(reply(text))
    return index.ask(QUESTION, answerer=llm(server, **options))


# -- markers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "leftovers"),
    [
        ("늘었다 【1】.", "늘었다 [1].", []),
        ("늘었다 ［2］.", "늘었다 [2].", []),
        ("늘었다 [1-3].", "늘었다 [1][2][3].", []),
        ("늘었다 [1–2].", "늘었다 [1][2].", []),
        ("늘었다[^1].", "늘었다[1].", []),
        ("늘었다 [1번].", "늘었다 [1].", []),
        ("늘었다 [1번, 3번].", "늘었다 [1][3].", []),
        ("늘었다 [1, 2].", "늘었다 [1][2].", []),
        ("늘었다 [1; 2].", "늘었다 [1][2].", []),
        ("늘었다 [1][2].", "늘었다 [1][2].", []),
        ("늘었다 [출처 1].", "늘었다 [1].", []),
        ("늘었다 [출처: 2].", "늘었다 [2].", []),
        ("It grew [Source 1].", "It grew [1].", []),
        ("It grew [passage 2].", "It grew [2].", []),
        ("It grew [1 and 2].", "It grew [1][2].", []),
        # not citations: a list item, a span of years
        ("(1) 첫째, 늘었다.", "(1) 첫째, 늘었다.", []),
        ("2020~2023년 [2020-2023]", "2020~2023년 [2020-2023]", ["[2020-2023]"]),
        # unreadable: flagged, not guessed
        ("늘었다 [1a].", "늘었다 [1a].", ["[1a]"]),
        ("늘었다 [p. 3].", "늘었다 [p. 3].", ["[p. 3]"]),
    ],
)
def test_marker_variants_are_normalised(text: str, expected: str, leftovers: list[str]) -> None:
    assert normalize_markers(text) == (expected, leftovers)


@pytest.mark.parametrize("marker", ["【{n}】", "[^{n}]", "[{n}번]", "[출처 {n}]", "[Source {n}]"])
def test_a_variant_marker_cites_and_verifies(
    index: Index, llm_server: LLMServer, marker: str
) -> None:
    n = loss_n(index)
    answer = ask(index, llm_server, f"카카오엔터프라이즈의 {LOSS} {marker.format(n=n)}.")
    assert [c.n for c in answer.citations] == [n]
    assert answer.verified and answer.text.endswith(f"[{n}].")


def test_an_unreadable_marker_is_flagged_and_not_verified(
    index: Index, llm_server: LLMServer
) -> None:
    n = loss_n(index)
    answer = ask(index, llm_server, f"카카오엔터프라이즈의 {LOSS} [{n}]. 또한 늘었다 [{n}a].")
    assert not answer.verified
    assert f"unreadable citation [{n}a]" in answer.notes


# -- no answer, no verified citation ----------------------------------------------------------


@pytest.mark.parametrize("text", ["[1][2]", "[1]. [2]", " 【1】【2】 ", "[1, 2]."])
def test_a_reply_of_markers_only_is_no_answer(
    index: Index, llm_server: LLMServer, text: str
) -> None:
    answer = ask(index, llm_server, text)
    assert not answer.refused and not answer.verified
    assert answer.text == "" and answer.citations == [] and answer.claims == []
    assert answer.notes == ["no answer: the model's reply holds only citation markers"]


@pytest.mark.parametrize("text", ["", "<think>The user wants a name. The passages say"])
def test_a_models_empty_reply_is_no_answer_not_a_refusal(
    index: Index, llm_server: LLMServer, text: str
) -> None:
    """A model that finished with nothing to say (or only reasoning) was taken as refusing,
    which the eval counts right on an unanswerable question; only the extractive answerer
    refuses by silence."""
    answer = ask(index, llm_server, text)
    assert not answer.refused and not answer.verified and answer.text == ""
    assert answer.notes == ["no answer: the model's reply holds no text"]


def test_an_answer_citing_nothing_is_never_verified(index: Index, llm_server: LLMServer) -> None:
    answer = ask(index, llm_server, f"카카오엔터프라이즈의 {LOSS}.")
    assert not answer.refused and answer.citations == [] and not answer.verified


def test_a_supported_cited_answer_still_verifies(index: Index, llm_server: LLMServer) -> None:
    answer = ask(index, llm_server, f"카카오엔터프라이즈의 {LOSS} [{loss_n(index)}].")
    assert answer.verified and answer.complete and answer.notes == []


def test_a_padded_citation_is_not_verified(index: Index, llm_server: LLMServer) -> None:
    """A sentence citing [loss][flitto] that only the loss passage supports: the Flitto
    citation adds nothing, so it is not verified, and neither is the answer."""
    n = loss_n(index)
    hits = index.search(QUESTION, k=5)
    other = next(m for m, h in enumerate(hits, 1) if h.doc_id == FLITTO)
    answer = ask(index, llm_server, f"카카오엔터프라이즈의 {LOSS} [{n}][{other}].")
    assert {c.n: c.verified for c in answer.citations} == {n: True, other: False}
    assert answer.claims[0].supported and not answer.verified
    [note] = answer.notes
    assert note.startswith(f"[{other}] adds nothing to the sentence: 카카오엔터프라이즈의 {LOSS}")


class _NeedsBoth:
    """Evidence that supports a sentence only from passages 1 and 2 together."""

    def support(self, sentence: str, cited: list[int]) -> tuple[bool, float]:
        return {1, 2} <= set(cited), 1.0


@pytest.mark.parametrize(
    ("cited", "padding"), [([1, 2], []), ([1, 2, 3], [3]), ([3, 1, 2], [3]), ([1], [])]
)
def test_a_sentence_combining_passages_keeps_each_citation_it_needs(
    cited: list[int], padding: list[int]
) -> None:
    claim = Claim(sentence="s", cited=cited, supported=len(cited) > 1, score=1.0)
    assert [n for n in cited if _pads(_NeedsBoth(), claim, n)] == padding  # type: ignore[arg-type]


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        REFUSALS["ko"],
        REFUSALS["ko"].rstrip("."),
        f'"{REFUSALS["ko"]}"',
        f"「{REFUSALS['ko']}」",
        f"{REFUSALS['ko']} [1]",
        f"{REFUSALS['ko']}\n\n참고: 기사에는 다른 회사 이야기만 있습니다.",
        "기사에는 이 질문에 대한 답이 없습니다.",  # a word dropped
        REFUSALS["en"],  # the other language's template
        REFUSALS["en"].lower().rstrip("."),
        f"'{REFUSALS['en']}' [2]",
        "The indexed articles do not contain the answer to this question!",
        "The passages do not mention who the CEO is.",  # cites nothing, says so
        "제공된 기사에는 관련 정보가 없습니다.",
        "죄송하지만 답할 수 없습니다.",  # cites nothing, says it cannot answer
        "그 질문에는 답변드릴 수가 없어요.",
    ],
)
def test_refusals_are_recognised_in_their_variants(text: str) -> None:
    assert is_refusal(text, TEMPLATES)


@pytest.mark.parametrize(
    "text",
    [
        "The company did not disclose the price [1].",
        "영업손실은 줄지 않았다 [2].",
        "기사에 따르면 매각 가격은 공개되지 않았습니다 [1].",
        f"카카오엔터프라이즈의 {LOSS} [1].",
        "The articles do not say it directly, but the loss grew fourfold [1].",
        "대표는 질문에 답할 수 없다고 말했다 [1].",  # cites a passage: an answer
    ],
)
def test_answers_that_say_not_are_not_refusals(text: str) -> None:
    assert not is_refusal(text, TEMPLATES)


def test_a_refusal_variant_from_the_server_refuses(index: Index, llm_server: LLMServer) -> None:
    answer = ask(index, llm_server, f'"{REFUSALS["en"]}" [1][2]')
    assert answer.refused and answer.text == REFUSALS["ko"] and answer.citations == []


# -- reasoning ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>Passage 1 says 1406.</think>\n\n답 [1].", "\n\n답 [1]."),
        ("<THINK>a</THINK>답 [1]. <think>b</think>끝 [2].", "답 [1]. 끝 [2]."),
        ("<thinking>x</thinking>답 [1].", "답 [1]."),
        ("<think>ran out of tokens while thinking", ""),
        ("a < b 이고 <b>굵게</b> [1].", "a < b 이고 <b>굵게</b> [1]."),
    ],
)
def test_reasoning_is_stripped(text: str, expected: str) -> None:
    assert strip_reasoning(text) == expected
    # the same, however the stream splits it
    for size in (1, 2, 5):
        f = ReasoningFilter()
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        assert "".join(f.feed(p) for p in pieces) + f.flush() == expected


def test_a_block_opened_by_the_chat_template_is_stripped_from_the_answer() -> None:
    # A stream cannot know the text is reasoning until the closing tag: it was shown, but
    # the answer that is checked starts after it.
    assert strip_reasoning("the template opened the block</think>답 [1].") == "답 [1]."


def test_think_blocks_are_never_streamed_or_checked(index: Index, llm_server: LLMServer) -> None:
    n = loss_n(index)
    text = f"<think>질문은 손실이다. 삼성전자는 무관하다.</think>카카오엔터프라이즈의 {LOSS} [{n}]."
    llm_server.queue(reply(text, [text[i : i + 4] for i in range(0, len(text), 4)]))
    stream = index.ask_stream(QUESTION, answerer=llm(llm_server))
    shown = "".join(stream)
    assert "think" not in shown and "삼성전자" not in shown
    answer = stream.answer
    assert answer is not None and answer.verified
    assert answer.text == f"카카오엔터프라이즈의 {LOSS} [{n}]."
    assert [c.sentence for c in answer.claims] == [f"카카오엔터프라이즈의 {LOSS}."]


def test_reasoning_content_is_not_the_answer(index: Index, llm_server: LLMServer) -> None:
    n = loss_n(index)
    text = f"카카오엔터프라이즈의 {LOSS} [{n}]."
    llm_server.queue(reply(text, reasoning=("삼성전자 이야기다. ", "아니다.")))
    stream = index.ask_stream(QUESTION, answerer=llm(llm_server))
    assert "".join(stream) == text
    assert stream.answer is not None and stream.answer.text == text


def test_thinking_until_the_token_limit_is_an_incomplete_non_answer(
    index: Index, llm_server: LLMServer
) -> None:
    thinking = " ".join(f"{i}번째로 따져 보면" for i in range(30))
    llm_server.queue(reply(f"<think>손실은 {thinking}", finish_reason="length"))
    stream = index.ask_stream(QUESTION, answerer=llm(llm_server))
    assert "".join(stream) == ""
    answer = stream.answer
    assert answer is not None and not answer.complete and answer.stop_reason == "length"
    assert not answer.refused and not answer.verified and answer.text == ""


# -- cut answers: length, loops ----------------------------------------------------------------


def test_a_length_finish_is_an_incomplete_answer(index: Index, llm_server: LLMServer) -> None:
    n = loss_n(index)
    llm_server.queue(
        reply(f"카카오엔터프라이즈의 {LOSS} [{n}]. 또한 매출은", finish_reason="length")
    )
    answer = index.ask(QUESTION, answerer=llm(llm_server, max_tokens=40))
    assert not answer.complete and answer.stop_reason == "length"
    assert answer.notes[0] == "the model reached its token limit (max_tokens 40)"
    assert llm_server.requests[0].body["max_tokens"] == 40


def test_a_loop_is_cut_and_marked_incomplete(index: Index, llm_server: LLMServer) -> None:
    n = loss_n(index)
    sentence = f"카카오엔터프라이즈의 {LOSS} [{n}]. "
    llm_server.queue(loop(sentence, copies=200))
    stream = index.ask_stream(QUESTION, answerer=llm(llm_server))
    shown = "".join(stream)
    answer = stream.answer
    assert answer is not None
    assert shown.count(sentence) <= 4  # stopped reading long before the 200 copies
    assert answer.text.count(LOSS) == 1
    assert not answer.complete and answer.stop_reason == "loop"
    assert "the model started repeating itself" in answer.notes[0]


@pytest.mark.parametrize("path", sorted(SEEDS.glob("*.txt")), ids=lambda p: p.name[:3])
def test_real_prose_is_not_a_loop(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    guard = LoopGuard()
    assert all(guard.cut(text[:end]) is None for end in range(1, len(text) + 1, 3))


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("서론. " + "같은 말을 반복한다. " * 10, "서론. 같은 말을 반복한다."),
        ("A는 B이다 [1]. 다른 말. " * 8, "A는 B이다 [1]. 다른 말."),
        (
            "서론. " + "이 문장은 스무 글자를 넘는 긴 문장이다. 짧다. " * 3,
            "서론. 이 문장은 스무 글자를 넘는 긴 문장이다. 짧다.",
        ),
    ],
)
def test_the_loop_is_cut_after_its_first_copy(text: str, kept: str) -> None:
    guard = LoopGuard()
    cut = next(c for end in range(1, len(text) + 1) if (c := guard.cut(text[:end])) is not None)
    assert text[:cut].rstrip() == kept


def test_a_run_of_one_character_is_a_loop() -> None:
    guard = LoopGuard()
    text = "답이다. " + "ㅋ" * 200
    cut = next(c for end in range(1, len(text) + 1) if (c := guard.cut(text[:end])) is not None)
    assert text[:cut].startswith("답이다. ㅋ") and cut < 20


# -- the context ---------------------------------------------------------------------------------


def test_estimates_are_high_for_hangul_and_latin() -> None:
    assert estimate_tokens("가나다라") == 4
    assert estimate_tokens("abcdefghi") == 3
    assert estimate_tokens("카카오 AI") == 3 + 1


def test_passages_are_dropped_from_the_end_to_fit_the_context(
    index: Index, llm_server: LLMServer
) -> None:
    hits = index.search(QUESTION, k=10)
    assert len(hits) == 6
    llm_server.queue(reply("손실이 늘었다 [1]."))
    generator = llm(llm_server, context_tokens=2500, max_tokens=512)
    answer = index.ask(QUESTION, k=10, answerer=generator)
    prompt = llm_server.requests[0].messages[1]["content"]
    shown = len(answer.passages)
    assert 0 < shown < 6
    assert [h.chunk_id for h in answer.passages] == [h.chunk_id for h in hits[:shown]]
    assert f"\n\n[{shown}] " in prompt and f"[{shown + 1}] " not in prompt
    assert sum(estimate_tokens(m["content"]) for m in llm_server.requests[0].messages) <= 2500 - 512
    assert (
        answer.notes[0] == f"{shown} of 6 passages shown, to fit the model's context of 2500 tokens"
    )


def test_one_long_passage_is_shortened_to_whole_sentences(index: Index) -> None:
    [hit] = index.search(QUESTION, k=1)
    [fitted] = fit_passages(QUESTION, [hit], "ko", 700, 100)
    assert 0 < len(fitted.text) < len(hit.text) and hit.text.startswith(fitted.text)
    assert fitted.end == fitted.start + len(fitted.text)


def test_a_prompt_that_cannot_fit_is_an_error(index: Index) -> None:
    hits = index.search(QUESTION, k=3)
    with pytest.raises(LLMError) as caught:
        fit_passages(QUESTION, hits, "ko", 600, 512)
    assert caught.value.kind == "context" and "raise --context-tokens" in str(caught.value)


@pytest.mark.parametrize("server", ["openai", "vllm", "llama.cpp"])
def test_a_context_overflow_is_retried_once_with_half_the_passages(
    index: Index, llm_server: LLMServer, server: str
) -> None:
    llm_server.queue(context_exceeded(server), reply("손실이 늘었다 [1]."))
    answer = index.ask(QUESTION, k=6, answerer=llm(llm_server, context_tokens=100_000))
    first, second = llm_server.requests
    assert "\n\n[6] " in first.messages[1]["content"]
    assert "\n\n[3] " in second.messages[1]["content"]
    assert "[4] " not in second.messages[1]["content"]
    assert len(answer.passages) == 3 and answer.complete
    assert answer.notes[0].startswith("3 of 6 passages shown: the server said ")


def test_a_second_context_overflow_is_an_error(index: Index, llm_server: LLMServer) -> None:
    llm_server.queue(context_exceeded(), context_exceeded())
    with pytest.raises(LLMError) as caught:
        index.ask(QUESTION, k=6, answerer=llm(llm_server, context_tokens=100_000))
    assert caught.value.kind == "context" and len(llm_server.requests) == 2


# -- the chat's condensed follow-up -------------------------------------------------------------

FIRST = "카카오엔터프라이즈는 왜 구조조정되었나?"
FOLLOW_UP = "그럼 새 대표는 누구야?"
NAMES = ["카카오엔터프라이즈"]


@pytest.mark.parametrize(
    ("rewritten", "expected"),
    [
        ("카카오엔터프라이즈의 새 대표는 누구인가?", "카카오엔터프라이즈의 새 대표는 누구인가?"),
        ('"카카오엔터프라이즈의 새 대표는 누구야?"\n', "카카오엔터프라이즈의 새 대표는 누구야?"),
        (
            "Standalone question: 카카오엔터프라이즈 새 대표는 누구?",
            "카카오엔터프라이즈 새 대표는 누구?",
        ),
        (
            "<think>대표를 묻는다</think>카카오엔터프라이즈 새 대표는 누가 되나?",
            "카카오엔터프라이즈 새 대표는 누가 되나?",
        ),
        # answered instead of asking
        ("카카오엔터프라이즈의 새 대표는 백상엽 전 대표의 후임입니다.", None),
        ("새 대표는 이경진 내정자입니다 [2].", None),
        # explained, or asked two things
        ("카카오엔터프라이즈의 새 대표는 누구인가?\n이 질문은 앞의 대화를 이어받습니다.", None),
        # another language
        ("Who is the new CEO of Kakao Enterprise?", None),
        # lost the kind of question
        ("카카오엔터프라이즈의 새 대표는 언제 취임하나?", None),
        ("", None),
    ],
)
def test_a_rewrite_must_still_be_the_question(rewritten: str, expected: str | None) -> None:
    from rag.chat import rewrite_ok

    assert rewrite_ok(rewritten, FOLLOW_UP, NAMES) == expected


def test_an_english_rewrite_of_an_english_question() -> None:
    from rag.chat import rewrite_ok

    question = "And who is the new CEO?"
    rewritten = "Who is the new CEO of Kakao Enterprise?"
    assert rewrite_ok(rewritten, question, ["Kakao Enterprise"]) == rewritten
    assert rewrite_ok("새 대표는 누구인가?", question, ["Kakao Enterprise"]) is None


def test_a_statement_from_the_server_falls_back_to_the_offline_rewrite(
    index: Index, llm_server: LLMServer
) -> None:
    from rag.chat import ChatSession

    statement = (
        "카카오엔터프라이즈는 클라우드 사업에 집중하기 위해 구조조정을 단행했으며, 이 과정에서 "
        "기존 경영진이 물러나고 새로운 대표가 선임되었다. 새 대표는 클라우드 분야에서 오랜 "
        "경력을 쌓은 전문가로, 회사의 수익성을 개선하고 기업 간 거래 사업을 강화하는 임무를 "
        "맡았다. 업계에서는 이번 인사가 카카오 그룹 전체의 사업 재편과 맞물려 있다고 본다."
    )
    llm_server.queue(reply(REFUSALS["ko"]), reply(statement), reply(REFUSALS["ko"]))
    session = ChatSession(index, llm(llm_server))
    standalone, stream = session.ask_stream(FIRST)
    session.record(FIRST, standalone, stream.result())
    standalone, stream = session.ask_stream(FOLLOW_UP)
    stream.result()
    assert standalone == "카카오엔터프라이즈 새 대표는 누구야?"  # carry_over's rewrite
    condense, answer = llm_server.requests[1:]
    assert "Last question: 그럼 새 대표는 누구야?" in condense.messages[0]["content"]
    assert "Question: 카카오엔터프라이즈 새 대표는 누구야?" in answer.messages[1]["content"]
