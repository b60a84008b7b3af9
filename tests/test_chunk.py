"""Sentence-aware chunking: spans, budgets, overlap and Korean sentence ends."""

from __future__ import annotations

import functools
import itertools
import json
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest

from rag.chunk import chunk_text, header, retrieval_text
from rag.korean import _content, morphemes, sentence_spans


def words(text: str) -> int:
    """A token counter with a fixed overhead, like a real tokenizer's specials and prefix."""
    return 3 + len(text.split())


def test_korean_sentence_ends_without_periods() -> None:
    text = (
        "카카오가 구조조정했다 그리고 회사는 클라우드에 집중한다\n소제목 줄\n"
        '매출은 1.5% 늘었다. 그는 "수익 구조가 좋지 않았다. 그래서 바꾼다"라고 말했다.'
    )
    got = [text[a:b] for a, b in sentence_spans(text)]
    assert got == [
        "카카오가 구조조정했다",  # no period, still a sentence end
        "그리고 회사는 클라우드에 집중한다",
        "소제목 줄",  # a line is never joined to the next
        "매출은 1.5% 늘었다.",  # "1.5" is not a sentence end
        '그는 "수익 구조가 좋지 않았다. 그래서 바꾼다"라고 말했다.',  # nor a period in a quote
    ]


def test_chunks_are_whole_sentences_with_one_sentence_overlap() -> None:
    sentences = [f"문장 {i}번은 다섯 단어로 끝났다." for i in range(12)]
    text = " ".join(sentences)
    chunks = chunk_text("d", text, words, max_tokens=3 + 15)
    assert len(chunks) > 1
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.tokens <= 18
        assert c.text.startswith("문장 ") and c.text.endswith("끝났다.")
    for prev, nxt in itertools.pairwise(chunks):
        assert prev.text.split(". ")[-1] == nxt.text.split(". ")[0].rstrip(".") + "." or (
            nxt.text.startswith(prev.text.split(". ")[-1])
        )
    assert chunks[-1].end == len(text)
    assert [c.chunk_id for c in chunks[:2]] == ["d#0", "d#1"]


def test_header_counts_against_the_budget() -> None:
    text = " ".join(f"문장 {i}번이다." for i in range(40))
    head = header("아주 긴 제목 " * 3, None)
    for c in chunk_text("d", text, words, max_tokens=30, head=head):
        assert words(retrieval_text(head, c.text)) <= 30


def test_overlong_sentence_is_cut_at_word_boundaries() -> None:
    text = " ".join(f"단어{i}" for i in range(100))  # one "sentence", no ending
    chunks = chunk_text("d", text, words, max_tokens=23)
    assert len(chunks) >= 5
    assert all(c.tokens <= 23 for c in chunks)
    assert chunks[0].text.startswith("단어0 ") and chunks[-1].text.endswith("단어99")
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_header_format() -> None:
    import datetime as dt

    assert header("제목", dt.date(2023, 5, 16)) == "제목 | 2023-05-16"
    assert header(None, None) == ""
    assert retrieval_text("", "본문") == "본문"


def test_bm25_terms_are_content_morphemes() -> None:
    terms = morphemes("카카오엔터프라이즈의 영업손실은 1406억원으로 증가했다")
    assert terms[-6:] == ["영업", "손실", "1406", "억", "원", "증가"]
    assert not {"의", "은", "으로", "었", "다"} & set(terms)  # particles and endings
    assert "kakao" in morphemes("Why was Kakao restructured?")


def test_multi_word_entries_give_one_term_per_word() -> None:
    # A user or multi-word dictionary entry is one token with a space in its form. The
    # index stores terms space-joined, so the query must split it the same way or the name
    # never matches.
    tokens = [SimpleNamespace(form="쇼와 천황", tag="NNP"), SimpleNamespace(form="은", tag="JX")]
    assert _content(tokens) == ["쇼와", "천황"]
    terms = morphemes("쇼와 천황과 마리 앙투아네트에 대한 기록")
    assert terms and not any(" " in t for t in terms)


def test_query_analyzer_reads_queries_as_the_shared_kiwi_does() -> None:
    from rag import korean

    queries = [
        "카카오엔터프라이즈 구조조정 이유",
        "에노모토 해군인 반류마루가 주력함이 되었던 전쟁은?",
        "1규빗을 미터법으로 환산하면 얼마인가?",  # a dictionary noun: 미터법
        "광주외국인학굔 어디 있어?",  # 광주외국인학교 + ㄴ: the noun is not written whole
        "회의가 괜찬은 분위기였나?",  # 괜찬: an entry of Kiwi's typo dictionary
        "Kakao Enterprise cut jobs in 2024",
    ]
    analyzer = korean.query_kiwi(queries)
    assert analyzer is not None
    for query in queries:
        expected = [(t.form, t.tag, t.start, t.len) for t in korean.kiwi().tokenize(query)]
        got = [(t.form, t.tag, t.start, t.len) for t in analyzer.tokenize(query)]
        assert got == expected, query
    assert ("광주외국인학교", "NNP") in [(t.form, t.tag) for t in analyzer.tokenize(queries[3])]


def test_rag_search_starts_analyzing_its_query_before_the_command_loads() -> None:
    # In a fresh process, as the `rag` entry point runs it: the child started for every
    # argument that may be the query gives the query's terms; the shared Kiwi never loads.
    code = """
import json, sys
from rag import korean
korean.search_early(["search", "--index", "idx", "1규빗을 미터법으로 환산하면", "-k", "3"])
early = korean._early
korean.one_query("1규빗을 미터법으로 환산하면")
assert early is not None and korean._one_query.child is early, korean._one_query
terms = korean.query_morphemes("1규빗을 미터법으로 환산하면")
print(json.dumps([terms, korean.kiwi.cache_info().currsize]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [["1", "규", "빗", "미터법", "환산"], 0]


@pytest.mark.parametrize(
    "args",
    [
        ["index", "news"],
        ["search", "--help"],
        ["search", "카카오", "--fusion", "dense"],
        ["search", "카카오", "--fusion=dense"],
        ["search"],
    ],
)
def test_only_a_search_that_uses_bm25_starts_early(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag import korean

    monkeypatch.setattr(korean, "_Aside", lambda texts: pytest.fail("forked"))
    korean.search_early(args)
    assert korean._early is None


def test_one_query_analyzes_the_query_without_the_shared_kiwi(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rag import korean

    monkeypatch.setattr(korean, "kiwi", functools.cache(lambda: pytest.fail("loaded Kiwi")))
    korean.one_query("1규빗을 미터법으로 환산하면")
    announced = korean._one_query
    assert announced is not None
    assert announced.child is not None or threading.active_count() > 1  # analyzed aside
    terms = korean.query_morphemes("1규빗을 미터법으로 환산하면")
    assert terms == ["1", "규", "빗", "미터법", "환산"]


def test_rag_search_embeds_its_query_while_the_child_analyzes_it(
    seeds, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rag search` asked the child for the query's terms first and embedded the query only
    once they came, though the child's Kiwi takes 0.7 s to build: the embedding (0.05-0.2
    s) was on the critical path."""
    from rag import Index, korean, retrieve

    query = "카카오엔터프라이즈 구조조정 이유"
    index = Index.create(embedder="fake")
    index.add([seeds])
    calls: list[str] = []
    embedder = type(index.embedder)
    real_embed, real_terms = embedder.embed_query, retrieve.query_morphemes
    monkeypatch.setattr(
        embedder, "embed_query", lambda self, q: calls.append("embed") or real_embed(self, q)
    )
    monkeypatch.setattr(
        retrieve, "query_morphemes", lambda q: calls.append("terms") or real_terms(q)
    )
    alone = index.search(query)
    assert calls == ["terms", "embed"]  # Kiwi loads here: the embedder's files meanwhile
    calls.clear()

    class Child:
        def result(self, text: str) -> list[str]:
            return korean.morphemes(text)

    monkeypatch.setattr(korean, "_one_query", korean._Announced(query, Child()))
    assert index.search(query) == alone
    assert calls == ["embed", "terms"]
