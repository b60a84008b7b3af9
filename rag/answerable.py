"""Is the answer in the retrieved passages? Decided on evidence inside a sentence window.

A window is a sentence of a passage with its neighbours (one each side) and the article's
title. A Korean question is answerable when one window
- holds enough of the question's informative words, weighted by IDF (from the index's BM25
  term statistics) and by part of speech: question words (누구, 무엇, 어떤), bound nouns and
  pronouns are left out, and predicates (가지다, 변하다, 받다) count for little, because
  questions paraphrase verbs far more freely than names and nouns; with the default
  embedding model, the share is moved by the passage's dense cosine to the question;
- names every entity of the question, or the passage does and the window names no
  look-alike (카카오엔터프라이즈 for 카카오브레인): `rag.lookalike` decides which names are
  the question's entities, whether a window names them, and which names are look-alikes;
- holds something of the kind the question asks for (`rag.kinds`: a person's name for
  누구/who, an amount for 얼마/how much, a date for 언제/when, a number for 몇/how many, a
  place for 어디/where), in a sentence that names no look-alike of the question's entity;
and the passage holds every number and ordinal (두 번째) the question names, the window
names the question's year if it names any year, and it does not say only the other side of
a contrast the question draws (신임 for 전임, 분기 for 연간, 마지막 for 첫).

An English question over Korean articles has few shared words, so its signals are its
names (`rag.names`: romanised Hangul names compared with the Latin ones; `rag.places`:
countries, cities and provinces; `rag.institutions`: Korea's public bodies; `rag.translated`:
names of English words a window translates), its years, months, ordinals and other numbers
(by value: 50,000 is 5만), Latin tokens (acronyms) and the dense cosine of the passage.
Thresholds were tuned on the first half of KorQuAD 1.0 dev's articles and measured on the
second (benchmarks/bench_answerability.py, docs/answers.md).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Sequence

from pydantic import BaseModel

from . import institutions, lookalike, translated
from .kinds import (
    answer_kind,
    asked_measure,
    asked_titles,
    asks_author,
    holds_kind,
    names_title,
)
from .korean import Token, genitive_stem, passage_sentences, tagged
from .lookalike import Question, Sentence, nospace
from .names import MONTHS, latin_names, match_names, months, translatable
from .places import korean_names, of_people
from .quantities import Quantity, quantities
from .records import Hit
from .support import QUESTION_WORDS, key_terms, language, numbers
from .translated import Translations

# Tuned on KorQuAD 1.0 dev, first half of the articles (see the module docstring): the
# best refusal accuracy minus false refusals with false refusals at most 0.09. Predicates
# weigh less than other words; the noun naming the kind of answer ("장소", "사람") could too
# (HEAD_WEIGHT), but on KorQuAD weighing it less did not pay.
MIN_COVERAGE = 0.56
PREDICATE_WEIGHT = 0.3
HEAD_WEIGHT = 1.0
WINDOW = 1
# A question's name held by this share of all chunks or more need not be in the passage
# (KorQuAD tuning half, 600 questions: 0.05 kept refusal accuracy at 0.782 and took false
# refusals from 0.115 to 0.112; 0.02 refused less). Only in an index of over 100 chunks.
COMMON_ENTITY = 0.05
# A question word shorter than this counts only as a word of the window, not inside one
# (정지 is not in 정지궤도; KorQuAD tuning half: refusal accuracy 0.758 -> 0.782, false
# refusals 0.110 -> 0.115; 3 letters: 0.794 / 0.130).
MIN_INFIX = 2
# English questions: the passage's dense cosine, a weak signal across languages, needed
# when the window gives none or only some of the question's names (a name may be translated:
# "Trade Day" for 무역의날). 0.80 was the best of 0.76-0.86 on the English half of
# evals/dev_wikinews.jsonl (refusal accuracy minus false refusals; docs/answers.md).
MIN_DENSE = 0.80
# Korean questions: a window's word coverage is shifted by DENSE_WEIGHT times its passage's
# dense cosine to the question less DENSE_NEUTRAL, before MIN_COVERAGE applies. A sibling
# paragraph holding the question's names and most of its words, but not the fact asked,
# is further from the question as a whole. Chosen on the KorQuAD tuning half (600
# questions: refusal accuracy minus false refusals, weights 0-6 by thresholds 0.40-0.80)
# and measured on the held-out half (docs/answers.md). The weights hold for the cosines of
# DENSE_MODEL only (what `decide` is told the index embeds with); a passage with no dense
# score (not among the dense candidates, or a BM25-only search) is left as it is.
DENSE_WEIGHT = 3.0
DENSE_NEUTRAL = 0.883
DENSE_MODEL = "intfloat/multilingual-e5-small"
# Korea's own names: an English question's Korea may go unnamed, as Korean articles write 국내.
HOME = frozenset({"한국", "대한민국"})

# Interrogative stems Kiwi tags as ordinary verbs or adjectives ("어떻게" -> 어떻/VA).
_INTERROGATIVE = frozenset({"어떻", "어떠", "어찌", "웬", "얼마나"})
_WEIGHTS = {"NNP": 1.0, "NNG": 1.0, "SL": 1.0, "SN": 1.0, "NR": 1.0, "SH": 1.0, "XR": 1.0}
_PREDICATES = frozenset({"VV", "VA"})
_YEAR = re.compile(r"(?<!\d)(?:1[5-9]|20)\d\d(?!\d)")
# A year as a Korean sentence writes one: not an amount or count (1800만원, 2010명, 1,999개).
_YEAR_OF = re.compile(
    r"(?<![\d.,])(?:1[5-9]|20)\d\d(?![\d.,])"
    r"(?!\s*(?:만|억|조|천|원|명|개|달러|건|회|호|번|대|곳|배|위|점|%|km|kg|m\b|t\b))"
)
# A year a window compares with is not the one it is about ("2010년보다 10% 늘었다").
_COMPARED = re.compile(r"\s*년?\s*(?:보다|대비|에\s*비해|에\s*비하여|과\s*비교|와\s*비교)")
_MONTH = re.compile(r"(?<!\d)(1[0-2]|[1-9])\s*월")  # "11월": an English question's November
# Ordinals ("두 번째", "3번째", "셋째"): the question's must be the passage's too, as its
# numbers must (the second concert is not the fourth).
_NATIVE = {"두": 2, "둘": 2, "세": 3, "셋": 3, "네": 4, "넷": 4, "다섯": 5, "여섯": 6, "일곱": 7}
_NATIVE.update({"여덟": 8, "아홉": 9, "열": 10})
_ENGLISH_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")
_ORDINAL = re.compile(r"(\d+|두|세|네|다섯|여섯|일곱|여덟|아홉|열)\s*번째|(둘|셋|넷|다섯|여섯)째")

_MEASURES = {
    "people": "number of people",
    "share": "percentage",
    "money": "sum of money",
    "score": "score",
    "change": "sum or percentage",
    "age": "age",
}

#: ``stats(terms)`` -> (chunks holding each term, number of chunks): `Index.document_frequencies`.
Stats = Callable[[Iterable[str]], tuple[dict[str, int], int]]


class Window(BaseModel):
    """The best evidence: passage ``n`` (1-based), the window's character span in the
    passage's text, and its central sentence's span."""

    n: int
    start: int
    end: int
    sentence: tuple[int, int]


class Decision(BaseModel):
    """Whether to answer, why, the window's score and the answer kind asked for. A Korean
    window's score is its weighted word coverage moved by its passage's dense cosine
    (`DENSE_WEIGHT`), so it may exceed 1."""

    answerable: bool
    reason: str
    score: float = 0.0
    kind: str = "other"
    window: Window | None = None


def decide(
    question: str,
    hits: Sequence[Hit],
    stats: Stats | None = None,
    model: str | None = None,
    translations: Translations | None = None,
) -> Decision:
    """Whether ``hits`` hold the answer to ``question``, with the reason and best window.

    Args:
        question: The user's question, Korean or English.
        hits: The retrieved passages, numbered from 1 in this order.
        stats: Document frequencies for IDF weights (`Index.document_frequencies`); without
            them every term of a part of speech weighs the same.
        model: The embedding model behind the hits' dense scores (`Embedder.model_id`);
            a Korean window's score counts its passage's dense cosine only for
            `DENSE_MODEL`, whose cosines the weights were chosen on.
        translations: Finds an English question's names that a window translates
            (`rag.translated`); used with `DENSE_MODEL` only, whose scores it was tuned on.
    """
    if not hits:
        return Decision(answerable=False, reason="no passages retrieved")
    sentences, titles = _sentences(hits)
    q = _analyze(question, stats, nospace(" ".join(f"{h.title or ''} {h.text}" for h in hits)))
    if not q.terms:  # "?", "왜?", "Why?": nothing to look for
        return Decision(answerable=False, reason="the question has no content words", kind=q.kind)
    if q.lang == "en":
        return _decide_english(
            q, hits, sentences, titles, translations if model == DENSE_MODEL else None
        )
    if model != DENSE_MODEL:
        hits = [h.model_copy(update={"dense_score": None}) for h in hits]
    q.entities += lookalike.names_by_ending(q, sentences)
    return _decide_korean(q, hits, sentences, titles)


def _decide_korean(
    q: Question, hits: Sequence[Hit], sentences: list[Sentence], titles: list[list[Token]]
) -> Decision:
    total = sum(q.terms.values())
    # The outlet and date are part of what a passage says about itself ("매일경제 기사",
    # "2013년 11월 전기요금 인상" in an article dated 2013-11-21).
    abouts = [_about(h) for h in hits]
    passages = [nospace(f"{a} {h.text}") for a, h in zip(abouts, hits, strict=True)]
    # Each article as retrieved, and its proper nouns (`lookalike.by_surname`).
    articles = {h.doc_id: " ".join(x.text for x in hits if x.doc_id == h.doc_id) for h in hits}
    names = {
        doc: frozenset(
            t.form
            for sentence in sentences
            if hits[sentence.n - 1].doc_id == doc
            for t in sentence.tokens
            if t.tag == "NNP"
        )
        for doc in articles
    }
    author = asks_author(q.text)
    [asked] = tagged([q.text])
    contrasts = {t.form for t in asked}
    roles = asked_titles(q.text) if q.kind == "person" else ()
    best: tuple[tuple[float, bool, float], int] | None = None
    failure = (-1.0, "no window holds the question's words")
    for i, rows in _windows(sentences):
        s = sentences[i]
        tokens = [t for r in rows for t in sentences[r].tokens]
        text = " ".join(sentences[r].text for r in rows)
        plain = nospace(f"{abouts[s.n - 1]} {text}")
        found = _coverage(q, tokens + titles[s.n - 1], plain)
        if q.head and q.kind != "other" and not _missing_kind(q, tokens):
            # "새로 이끌 사람은 누구인가": the window names a person, which is what 사람 asks.
            found += q.terms[q.head] * (q.head[0] not in plain)
        score = found / total + _dense_shift(hits[s.n - 1])
        passage = passages[s.n - 1]
        doc = hits[s.n - 1].doc_id
        problem = lookalike.missing_entity(q, plain, tokens, passage, articles[doc], names[doc])
        # A number may set the scene (the year of an event) a few sentences away.
        problem = problem or _missing_number(q.numbers, passage)
        problem = problem or _missing_ordinal(q.text, passage)
        around = [sentences[r] for r in rows]
        problem = problem or (
            _unsigned(hits[s.n - 1])
            if author
            else _missing_kind(q, tokens) or _date_apart(q, around)
        )
        problem = problem or _other_year(q.text, text)
        if not names_title(roles, plain):  # "일본 총리는 누구야?" answered by 바이든 대통령
            problem = problem or f"the window names no {'/'.join(roles)}"
        problem = problem or _contrary(contrasts, tokens)
        problem = problem or lookalike.answer_beside_lookalike(
            q, around, lambda x: lookalike.korean_lookalike(q, x)
        )
        if problem:
            if score > failure[0]:
                failure = (score, problem)
            continue
        # Among equally good windows, the one whose own sentence holds the answer and
        # the question's words: its sentence is the one to quote.
        centre = not _missing_kind(q, s.tokens)
        key = (score, centre, _coverage(q, s.tokens, nospace(s.text)))
        if best is None or key > best[0]:
            best = (key, i)
    if best is None:
        return Decision(answerable=False, reason=failure[1], kind=q.kind, score=0.0)
    (score, *_), i = best
    window = _window(sentences, i)
    hit = hits[window.n - 1]
    covered = score - _dense_shift(hit)
    dense = "" if hit.dense_score is None else f", passage cosine {hit.dense_score:.2f}"
    if score < MIN_COVERAGE:
        why = f"the best window holds {covered:.0%} of the question's weighted words{dense}"
        if failure[0] >= MIN_COVERAGE:  # what kept out a window that held enough says more
            why = failure[1]
        return Decision(answerable=False, reason=why, score=score, kind=q.kind, window=window)
    return Decision(
        answerable=True,
        reason=f"window covers {covered:.0%}{dense}",
        score=score,
        kind=q.kind,
        window=window,
    )


def _dense_shift(hit: Hit) -> float:
    """What the passage's dense cosine to the question adds to a Korean window's score."""
    if hit.dense_score is None:
        return 0.0
    return DENSE_WEIGHT * (hit.dense_score - DENSE_NEUTRAL)


def _decide_english(
    q: Question,
    hits: Sequence[Hit],
    sentences: list[Sentence],
    titles: list[list[Token]],
    translations: Translations | None,
) -> Decision:
    names = latin_names(q.text)
    years = set(_YEAR.findall(q.text))
    wanted_months = months(q.text)
    ordinals = _ENGLISH_ORDINAL.findall(q.text)
    asked = _english_numbers(q.text)
    valued: dict[int, list[Quantity]] = {}  # each passage's numbers, read once
    dense = {n: h.dense_score or 0.0 for n, h in enumerate(hits, 1)}
    abouts = [_about(h) for h in hits]
    acronyms = {w.lower() for w in re.findall(r"\b[A-Z][A-Z0-9]{1,5}\b", q.text)}
    author = asks_author(q.text)
    roles = asked_titles(q.text) if q.kind == "person" else ()
    best: tuple[tuple[float, float, float], int, str] | None = None
    # Why the window that got furthest failed: a later check says more than an earlier one.
    failure = (0, "no window matches the question")
    for i, rows in _windows(sentences):
        s = sentences[i]
        tokens = [t for r in rows for t in sentences[r].tokens]
        text = " ".join(sentences[r].text for r in rows)
        said = f"{abouts[s.n - 1]} {text}"
        # The date the question gives may be the passage's, not the window's: "20 명이
        # 사망하였다" two sentences after "2020년 10월 30일 … 지진이 발생하여".
        dated = f"{abouts[s.n - 1]} {hits[s.n - 1].text}"
        missing_years = years - set(_YEAR.findall(dated))
        if missing_years:
            failure = max(failure, (1, f"year {sorted(missing_years)[0]} not in any window"))
            continue
        missing_months = wanted_months - {int(m) for m in _MONTH.findall(dated)}
        if missing_months:
            failure = max(failure, (1, f"month {min(missing_months)} not in any window"))
            continue
        # "the 60th Trade Day" is not 제61회 무역의날, as a Korean question's 두 번째 is not 네
        # 번째: an ordinal in digits is the passage's number too (60회, 제60대, 60번째).
        missing = [o for o in ordinals if not re.search(rf"(?<!\d){o}(?!\d)", dated)]
        if missing:
            failure = max(failure, (1, f"ordinal {missing[0]} not in the passage"))
            continue
        # Its other numbers too, by value: "passed 50,000" is 5만 명을 돌파, "$140.6 billion"
        # 1406억 달러; as a Korean question's numbers must be the passage's.
        if s.n not in valued:
            valued[s.n] = quantities(dated)
        missing = [x.text for x in asked if not any(_same_value(x, v) for v in valued[s.n])]
        if missing:
            failure = max(failure, (1, f"number {missing[0]} not in the passage"))
            continue
        titled = tokens + titles[s.n - 1]
        matched, given, near = match_names(names, titled, text)
        shown = list(matched)
        if translations is not None:  # "Trade Day": 무역의날; "Busan Savings Bank": 부산저축은행
            for name in [n for n in names if n not in matched]:
                score, phrase = translations.best(name, titled)
                if score >= translated.MIN_SCORE:
                    matched.append(name)
                    given.append(phrase)
                    shown.append(f"{name} ({phrase})")
        if near and near[0] in matched:  # its "look-alike" translated it after all
            near = match_names(names, titled, text, given)[2]
        if near:
            failure = max(
                failure, (3, f"'{near[0]}' is not named; only a similar name ({near[1]})")
            )
            continue
        unnamed = [n for n in names if n not in matched]
        # A name whose Korean a table gives (Daegu: 대구, Japan: 일본, the Fair Trade
        # Commission: 공정거래위원회) is not named when the window lacks it, another name
        # found or not; but for Korea, which Korean articles call 국내 as often.
        known = [
            n
            for n in unnamed
            if (korean := set(korean_names(n))) and not of_people(n) and not HOME & korean
        ]
        if known or (not matched and any(not translatable(n) for n in unnamed)):
            failure = max(failure, (2, f"no window names {', '.join(known or unnamed)}"))
            continue
        # A name no window gives may be translated, not romanised ("Trade Day" for
        # 무역의날): the passage must then be close to the question as a whole.
        if unnamed and dense[s.n] < MIN_DENSE:
            failure = max(
                failure, (3, f"{', '.join(n for n in names if n not in matched)} not named")
            )
            continue
        if not names and dense[s.n] < MIN_DENSE:
            failure = max(failure, (3, f"dense similarity {max(dense.values()):.2f} < {MIN_DENSE}"))
            continue
        given_text = " ".join(given)
        problem = _unsigned(hits[s.n - 1]) if author else _missing_kind(q, tokens, given_text)
        if not names_title(roles, said):
            # "Who coached Japan …?" answered by "사사키 선수와 마치노 선수가 골을 넣었다"
            problem = problem or f"the window names no {'/'.join(roles)}"
        problem = problem or lookalike.answer_beside_lookalike(
            q,
            [sentences[r] for r in rows],
            functools.partial(lookalike.english_lookalike, names, given=given),
            given,
        )
        if problem:
            failure = max(failure, (4, problem))
            continue
        shared = len(acronyms & {t.form.lower() for t in tokens if t.tag == "SL"})
        key = (float(len(matched)), float(shared), dense[s.n])
        if best is None or key > best[0]:
            best = (key, i, f"names {shown or 'none'}, dense {dense[s.n]:.2f}")
    if best is None:
        return Decision(answerable=False, reason=failure[1], kind=q.kind)
    key, i, why = best
    return Decision(
        answerable=True, reason=why, score=key[2], kind=q.kind, window=_window(sentences, i)
    )


# -- the question ------------------------------------------------------------------------


def _analyze(question: str, stats: Stats | None, written: str = "") -> Question:
    [tokens] = tagged([question])
    tokens = _unglued(tokens, stats, written)
    terms: dict[tuple[str, str], float] = {}
    for t in tokens:
        form = t.form.lower() if t.tag == "SL" else t.form
        if form in QUESTION_WORDS or form in _INTERROGATIVE:
            continue
        if t.tag in _WEIGHTS:
            terms[form, t.tag] = _WEIGHTS[t.tag]
        elif t.tag in _PREDICATES:
            terms[form, t.tag] = PREDICATE_WEIGHT
    head = _head_noun(tokens)
    if head is not None and (head.form, head.tag) in terms:
        terms[head.form, head.tag] *= HEAD_WEIGHT
    kind_of = _kind_of(tokens)
    if kind_of is not None:
        terms.pop((kind_of.form, kind_of.tag), None)
    entities = lookalike.entities(question, tokens)
    unknown: set[str] = set()
    if stats is not None and terms:
        df, n = stats({form for form, _ in terms} | set(entities))
        # A name the index never holds may be misspelt (헤리슨 for 해리슨): a spelling a
        # letter or two off stands for it (`rag.names.misspelt_in`). A name it does hold is
        # a real one, and a name close to it is another.
        unknown = {nospace(e) for e in entities if n and not df.get(e, 0)}
        if n > 100:
            # A name found in a good share of all chunks (한국 in Korean news) is the
            # corpus's setting more than the question's subject: no passage need repeat it.
            entities = [e for e in entities if df.get(e, 0) < COMMON_ENTITY * n]
        if n:
            # Smoothed IDF: a term no chunk holds weighs most; one every chunk holds still
            # counts 1, so that in a small index (two articles, ten chunks) the subject that
            # every chunk names is not weighed to nothing.
            for key in terms:
                terms[key] *= math.log((n + 1) / (df.get(key[0], 0) + 1)) + 1
    return Question(
        text=question,
        lang=language(question),
        kind=answer_kind(question),
        terms=terms,
        head=(head.form, head.tag) if head is not None else None,
        entities=entities,
        compounds=lookalike.compounds(question, tokens, entities),
        unknown=unknown,
        numbers=_numbers(tokens),
        measure=asked_measure(question, tokens),
        runs={
            t.form: "".join(x.form for x in run) for run in lookalike.noun_runs(tokens) for t in run
        },
    )


# "1년 전과 비교해", "3개월 뒤": a time counted from the article's, which it writes as a
# date or as 전년 ("전년동기 대비"), not as the question's number.
_SPANS = frozenset({"년", "개월", "달", "주", "주일", "일", "시간", "분기"})
_RELATIVE = frozenset({"전", "후", "뒤"})


def _numbers(tokens: list[Token]) -> set[str]:
    """The numbers a question names (digits, as written without commas), but for a time
    counted back or on from the article's ("1년 전")."""
    found = set()
    for i, t in enumerate(tokens):
        if t.tag != "SN":
            continue
        after = [x.form for x in tokens[i + 1 : i + 3]]
        if len(after) == 2 and after[0] in _SPANS and after[1] in _RELATIVE:
            continue
        found.add(t.form.replace(",", ""))
    return found


# The particles Kiwi reads into a proper noun its dictionary lacks ("플리토의", "송요찬이"),
# with their tags.
_GLUED = {"의": "JKG", "이": "JKS"}


def _unglued(tokens: list[Token], stats: Stats | None, written: str = "") -> list[Token]:
    """``tokens`` with a particle split off a proper noun Kiwi read it into: the genitive
    의 where the index holds the name without it more often (`rag.korean.genitive_stem`),
    and 의 or the subject 이 where the passages, ``written`` without spaces, write the name
    without it too (황준헌 is 황/준/헌 to Kiwi in "황준헌(黃遵憲)의", so the index counts
    neither). A name that ends so (시라이) is never written without its last letter."""
    glued = [t for t in tokens if t.tag == "NNP" and len(t.form) >= 3 and t.form[-1] in _GLUED]
    if not glued:
        return tokens
    genitives = {f for t in glued if t.form[-1] == "의" for f in (t.form, t.form[:-1])}
    df = stats(genitives)[0] if stats and genitives else {}
    out = []
    for t in tokens:
        name = t.form[:-1]
        split = t in glued and (
            (t.form[-1] == "의" and genitive_stem(t.form, lambda f: df.get(f, 0)) == name)
            or written.count(name) > written.count(t.form)
        )
        if split:
            out += [
                Token(name, "NNP", t.start, t.end - 1),
                Token(t.form[-1], _GLUED[t.form[-1]], t.end - 1, t.end),
            ]
        else:
            out.append(t)
    return out


def _kind_of(tokens: list[Token]) -> Token | None:
    """The noun a question ends on after 어떤/무슨 ("플리토는 어떤 *회사*야?"): the kind of
    thing its answer is, which the passage says in its own words (기업, 언어 데이터 업체)."""
    words = [t for t in tokens if not (t.tag[0] in "ES" or t.tag == "VCP")]
    if len(words) >= 2 and words[-2].form in ("어떤", "무슨") and words[-1].tag == "NNG":
        return words[-1]
    return None


def _head_noun(tokens: list[Token]) -> Token | None:
    """The noun naming the kind of answer: the common noun the question ends on, modified by
    a clause ("받은 *상*은 무엇인가", "연 *장소*는?", "새로 이끌 *사람*은 누구인가"). A noun
    asked about directly ("카카오의 *주가*는 얼마인가") is content, not a kind."""
    for i in range(len(tokens) - 1, 0, -1):
        t = tokens[i]
        if t.tag == "NNG" and t.form not in QUESTION_WORDS:
            return t if tokens[i - 1].tag == "ETM" else None
        # After it only particles, endings, the copula, punctuation and question words.
        if not (t.tag[0] in "JES" or t.tag in ("VCP", "NP", "MM", "MAG", "NNB", "NNG")):
            return None
    return None


# -- windows -----------------------------------------------------------------------------


def quote_span(passage: str, claims: Sequence[str]) -> tuple[int, int] | None:
    """Span in ``passage`` of the sentence the first of ``claims`` quotes or restates.

    A quoted sentence is found as written (spacing aside); a restated one is the passage
    sentence sharing most of its content words, if it shares at least half.
    """
    if not claims:
        return None
    spans = passage_sentences(passage)
    claim = nospace(re.sub(r"\[\d+\]", "", claims[0]))
    for a, b in spans:
        sentence = nospace(passage[a:b])
        if sentence and (sentence in claim or claim in sentence):
            return a, b
    [wanted, *found] = key_terms([claims[0], *(passage[a:b] for a, b in spans)])
    shares = [len(wanted & f) / len(wanted) if wanted else 0.0 for f in found]
    best = max(range(len(spans)), key=shares.__getitem__, default=None)
    return spans[best] if best is not None and shares[best] >= 0.5 else None


def _sentences(hits: Sequence[Hit]) -> tuple[list[Sentence], list[list[Token]]]:
    spans = [(n, a, b) for n, h in enumerate(hits, 1) for a, b in passage_sentences(h.text)]
    texts = [hits[n - 1].text[a:b] for n, a, b in spans]
    analyzed = tagged(texts + [h.title or "" for h in hits])
    sentences = [
        Sentence(n, a, b, tokens, text)
        for (n, a, b), tokens, text in zip(spans, analyzed[: len(texts)], texts, strict=True)
    ]
    return sentences, analyzed[len(texts) :]


def _windows(sentences: list[Sentence]) -> Iterable[tuple[int, list[int]]]:
    for i, s in enumerate(sentences):
        rows = range(max(0, i - WINDOW), min(len(sentences), i + WINDOW + 1))
        yield i, [r for r in rows if sentences[r].n == s.n]


def _window(sentences: list[Sentence], i: int) -> Window:
    rows = next(r for j, r in _windows(sentences) if j == i)
    s = sentences[i]
    return Window(
        n=s.n,
        start=sentences[rows[0]].start,
        end=sentences[rows[-1]].end,
        sentence=(s.start, s.end),
    )


def _coverage(q: Question, tokens: list[Token], plain: str) -> float:
    forms = {t.form.lower() if t.tag == "SL" else t.form for t in tokens}
    predicates = [t.form for t in tokens if t.tag in _PREDICATES]
    found = 0.0
    for (form, tag), weight in q.terms.items():
        if tag in _PREDICATES:
            # "연" (열다) and "열렸다" (열리다): a stem and its passive or causative.
            hit = any(p.startswith(form) or form.startswith(p) for p in predicates)
        else:
            # Compounds split differently ("구조조정" / "구조 조정"): the spaceless text.
            # A one-letter piece counts only within its run: Kiwi splits an unknown name
            # (한빛/마/린) that a passage's context gives whole (한빛마린).
            piece = form if len(form) >= MIN_INFIX else q.runs.get(form, "")
            hit = form in forms or (len(piece) >= MIN_INFIX and piece in plain)
            hit = hit or lookalike.spelt(q, form, plain)
            # A public body's other name (공정위: 공정거래위원회; `rag.institutions`).
            hit = hit or any(other in plain for other in institutions.other_names(form))
        found += weight if hit else 0.0
    return found


def _other_year(question: str, window: str) -> str:
    """Why the window is about another year than the question's ("" when it may be): it
    names years, and not the question's ("2010에 ... 42회" for "2011년 ... 몇 번")."""
    asked = set(_YEAR_OF.findall(question))
    given = {m[0] for m in _YEAR_OF.finditer(window) if not _COMPARED.match(window, m.end())}
    if asked and given and not asked & given:
        return f"the window names {', '.join(sorted(given))}, not {', '.join(sorted(asked))}"
    return ""


# Words that set the question's subject against others of its kind: the former chief
# executive is not the new one, a year's sales are not a quarter's, the first is not the
# last. Each pair of sides excludes the other; a side's words mean the same. A window that
# says the other side and never the question's is about something else (a closed class, like
# the time words of `rag.kinds`; no threshold). On KorQuAD 1.0 dev's questions with such a
# word, turned into the other side where the paragraph never writes it
# (benchmarks/bench_nearmiss.py --contrasts), the gate refused 0.088 -> 0.679 of the 137
# held-out swaps (tuning half 0.108 -> 0.656 of 157); of all 337 questions holding such a
# word, one more was refused ("역사상 최초로 단독 사면", beside "사면을 마지막으로").
_CONTRARIES = (
    (frozenset({"전임"}), frozenset({"신임", "후임"})),
    (frozenset({"연간"}), frozenset({"분기", "반기", "상반기", "하반기", "월간"})),
    (frozenset({"첫", "최초", "처음"}), frozenset({"마지막", "최후"})),
    (frozenset({"최대", "최다"}), frozenset({"최소"})),
    (frozenset({"최고"}), frozenset({"최저"})),
)


def _contrary(asked: set[str], tokens: list[Token]) -> str:
    """Why the window is about the other side of a contrast the question draws ("" when
    it is not): it says 신임 and never 전임 for "전임 대표이사는 누구인가"."""
    said = {t.form for t in tokens}
    for one, other in _CONTRARIES:
        for wanted, instead in ((one, other), (other, one)):
            if asked & wanted and not said & wanted and said & instead:
                return f"the window says {min(said & instead)}, not {min(asked & wanted)}"
    return ""


def _missing_number(wanted: set[str], text: str) -> str:
    missing = wanted - numbers(text)
    return f"number {sorted(missing)[0]} not in the passage" if missing else ""


def _ordinals(text: str) -> set[int]:
    found = set()
    for digits, word in ((m[1], m[2]) for m in _ORDINAL.finditer(text)):
        found.add(int(digits) if digits and digits.isdigit() else _NATIVE[digits or word])
    return {n for n in found if n >= 2}


def _english_numbers(question: str) -> list[Quantity]:
    """The numbers an English question names that a passage must hold by value: not a year
    or a month (checked on their own), a day of a month, or an ordinal ("2nd")."""
    out = []
    for x in quantities(question):
        after = question[x.end : x.end + 2].lower()
        dated = x.unit in ("년", "월", "일") or _YEAR.fullmatch(x.text)
        day = bool(re.search(rf"(?:{'|'.join(MONTHS)})\s*$", question[: x.start], re.I))
        if not (dated or day or after in ("st", "nd", "rd", "th")):
            out.append(x)
    return out


def _same_value(asked: Quantity, written: Quantity) -> bool:
    """Whether a passage's number has the value an English question's has, whatever the
    unit each is written with (50,000 cases; 5만 명)."""
    slack = max(asked.tolerance, written.tolerance, abs(asked.value) * 1e-9)
    return abs(asked.value - written.value) <= slack


def _missing_ordinal(question: str, passage: str) -> str:
    missing = _ordinals(question) - _ordinals(passage)
    return f"ordinal {min(missing)} (번째) not in the passage" if missing else ""


def _missing_kind(q: Question, tokens: list[Token], given: str | None = None) -> str:
    """Empty when ``tokens`` hold something of the kind ``q`` asks for (names in ``given``,
    by default the question, do not count), else why not."""
    exclude = nospace(q.text if given is None else given)
    if q.kind == "other" or holds_kind(q.kind, tokens, exclude, q.measure):
        return ""
    return f"no {_MEASURES.get(q.measure, q.kind)} in the window"


def _date_apart(q: Question, window: list[Sentence]) -> str:
    """Why the window's date does not answer a Korean 언제 ("" when it may): no sentence
    holding a date holds any of the question's words. A date the next sentence gives is
    about something else: "공사는 지난해 3월 시작됐다" beside "신청사는 막바지 공사 중이다"
    does not say when the new building opens. Not so for the other kinds (docs/answers.md)."""
    if q.kind != "date":
        return ""
    for s in window:
        if not _missing_kind(q, s.tokens) and _coverage(q, s.tokens, nospace(s.text)) > 0:
            return ""
    return "no date beside the question's words"


def _about(hit: Hit) -> str:
    """What a passage says about itself: its article's title, outlet, date and byline."""
    date = hit.date.isoformat() if hit.date else ""
    day = f"{hit.date.year}년 {hit.date.month}월 {hit.date.day}일" if hit.date else ""
    return f"{hit.title or ''} {hit.source or ''} {date} {day} {hit.byline or ''}"


def _unsigned(hit: Hit) -> str:
    """Why a question asking who wrote the article (`asks_author`) cannot be answered from
    this passage: its byline answers, not a person its text names."""
    return "" if hit.reporter else "the article does not name its reporter"
