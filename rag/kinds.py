"""What kind of answer a question asks for, and whether a text holds one (Kiwi tags)."""

from __future__ import annotations

import itertools
import re

from .korean import Token
from .support import language, numbers

# Time words with no digit; Kiwi has no time tag, so these few closed-class nouns stand in.
_TIME_WORDS = frozenset(
    "지난해 올해 작년 내년 어제 오늘 내일 당시 현재 최근 이날 전날 다음날 오전 오후 새벽".split()
)
_TIME_UNITS = frozenset("년 월 일 시 분 년대 세기 시대 주 초 말 분기 반기".split())
# The most common Korean surnames (Statistics Korea, 2015 census: these cover about 95% of
# people); a closed class, like the time words.
_SURNAMES = frozenset(
    "김이박최정강조윤장임한오서신권황안송전홍류유고문양손배백허남심노하곽성차주우구민진나지엄채원"
    "천방공현함변염여추도소석선설마길연위표명기반라왕금옥육인맹제모탁국어은편용예경봉사부"
)
_PLACE_NOUNS = re.compile(
    r"(?:어느|어떤|무슨)\s*(?:도시|나라|국가|지역|장소|지점|대륙|섬|항구|마을|동네)"
)
_KINDS = (
    (
        "person",
        re.compile(
            r"누구|누가|\bwho(m|se)?\b|\bwhich (?:\w+ )?(?:player|person|man|woman|coach|"
            r"executive|official|minister|politician|candidate|singer|actor|actress)\b",
            re.I,
        ),
    ),
    ("amount", re.compile(r"얼마(?!나)|\bhow much\b", re.I)),
    # "What was Kakao Brain's revenue?": English asks for a sum by naming it.
    (
        "amount",
        re.compile(
            r"^\s*what\s+(?:is|was|are|were|will be)\b(?:(?!\b(?:cause|reason|effect|impact)).)*"
            r"\b(?:revenue|sales|turnover|profits?|loss(?:es)?|price|cost|budget|salary|income|"
            r"deficit|market (?:cap|value))\b",
            re.I,
        ),
    ),
    ("date", re.compile(r"언제|몇\s*년도|\bwhen\b|\bwhat (year|date|day|month)\b", re.I)),
    ("number", re.compile(r"몇|얼마나|\bhow (?:many|long|old|far|tall|high|deep)\b", re.I)),
    ("place", re.compile(r"어디|\bwhere\b", re.I)),
    # "어느 도시에서 열렸나", "러시아군을 벗어났던 지점은?": a place, named by its kind.
    ("place", _PLACE_NOUNS),
)


# Native numerals Kiwi tags as determiners before a counter ("세 명", "두 곳").
_NATIVE_NUMERALS = frozenset(
    "한 두 세 네 다섯 여섯 일곱 여덟 아홉 열 스무 수십 수백 수천 수만".split()
)
# Other counters are paraphrased freely (몇 등급 / 5개, 몇 가지 / 4종, 몇 센티 / 35cm: KorQuAD),
# a head count is not: "how many people" needs a number of 명 (or 인).
_PEOPLE_COUNTERS = frozenset({"명", "인"})
_HOW_MANY_PEOPLE = re.compile(
    r"\bhow many (?:\w+ )?(?:people|persons|employees|workers|staff|members|students|"
    r"soldiers|victims|passengers|residents|players|patients|deaths|casualties|injured|"
    r"dead|children|users|visitors|voters)\b",
    re.I,
)


# A question that ends by naming a person's role ("…의 대표는?", "…의 감독은?") asks who
# holds it, without saying 누구; a closed class of role nouns.
_ROLE_QUESTION = re.compile(
    r"(?:대표|대표이사|최고경영자|사장|회장|부회장|의장|총재|위원장|장관|총리|대통령|감독|"
    r"작가|저자|작곡가|창업자|설립자|발명가|주인공|후임|전임)(?:은|는)\s*\?\s*$"
)


def answer_kind(question: str) -> str:
    """What the question asks for: person, amount, date, number, place or other.

    An English question asks with its first question word: the later ones open a clause
    ("How many were on board *when* it crashed?" asks for a number, not a date).
    """
    found = [
        (m.start() if english else rank, kind)
        for english in [language(question) == "en"]
        for rank, (kind, pattern) in enumerate(_KINDS)
        for m in [pattern.search(question)]
        if m
    ]
    if found:
        return min(found)[1]
    return "person" if _ROLE_QUESTION.search(question) else "other"


def counts_people(question: str, tokens: list[Token]) -> bool:
    """Whether a "how many" question counts people ("몇 명", "how many employees");
    ``tokens`` are the question's (`rag.korean.tagged_batch`)."""
    if any(
        t.form == "몇" and nxt.form in _PEOPLE_COUNTERS for t, nxt in itertools.pairwise(tokens)
    ):
        return True
    return bool(_HOW_MANY_PEOPLE.search(question))


def asked_counter(tokens: list[Token]) -> str:
    """The counter a "몇" question names (개 in "몇 개", 층 in "몇 층이었나"), or ""."""
    for t, nxt in itertools.pairwise(tokens):
        if t.form == "몇" and nxt.tag in ("NNB", "NNG", "SW"):
            return nxt.form
    return ""


def holds_counter(tokens: list[Token], counter: str) -> bool:
    """Whether ``tokens`` hold a number followed by ``counter`` ("7개", "세 개", "1만여 개")."""
    for i, t in enumerate(tokens):
        if t.tag in ("SN", "NR") or (t.tag == "MM" and t.form in _NATIVE_NUMERALS):
            rest = [x.form for x in tokens[i + 1 : i + 4] if x.tag not in ("XSN", "NR")]
            if rest and rest[0] == counter:
                return True
    return False


def holds_kind(kind: str, tokens: list[Token], question: str, people: bool = False) -> bool:
    """Whether ``tokens`` (`rag.korean.tagged_batch`) hold an answer of ``kind`` (see
    `answer_kind`); names already in ``question`` do not count as a person or place, and a
    number must count people when ``people`` (`counts_people`)."""
    after = [*tokens[1:], Token("", "", 0, 0)]
    if kind in ("person", "place"):
        # A name the question does not already give.
        for t, nxt in zip(tokens, after, strict=True):
            new = t.tag == "NNP" and t.form not in question
            if new and (kind == "place" or _is_person(t, nxt)):
                return True
            if kind == "place" and t.tag in ("NNG", "NNP") and nxt.form in ("에서", "에"):
                return True
        return False
    # A number the question names is not its answer (3 in "한빛마린3호는 몇 번째 배인가?").
    asked = numbers(question)
    tokens = [
        t._replace(tag="") if t.tag == "SN" and t.form.replace(",", "") in asked else t
        for t in tokens
    ]
    after = [*tokens[1:], Token("", "", 0, 0)]
    if kind == "number" and people:
        for i, t in enumerate(tokens):
            if t.tag in ("SN", "NR") or (t.tag == "MM" and t.form in _NATIVE_NUMERALS):
                rest = [x.form for x in tokens[i + 1 : i + 3] if x.tag != "XSN"]  # 1,200여 명
                if rest and rest[0] in _PEOPLE_COUNTERS:
                    return True
        return False
    if kind == "number":
        return any(t.tag in ("SN", "NR") for t in tokens)
    if kind == "amount":
        return any(
            # A number with a unit (억, 원, 달러, kg), not a share (%) or a time (년, 분기).
            t.tag in ("SN", "NR")
            and nxt.tag in ("NNB", "NR", "SW", "SL")
            and nxt.form not in _TIME_UNITS | {"%"}
            for t, nxt in zip(tokens, after, strict=True)
        )
    if kind == "date":
        return any(
            (t.tag in ("SN", "NR") and nxt.form in _TIME_UNITS) or t.form in _TIME_WORDS
            for t, nxt in zip(tokens, after, strict=True)
        )
    return True


def _is_person(t: Token, nxt: Token) -> bool:
    """Whether proper noun ``t`` looks like a person's name: a Korean one (three syllables
    opening with a common surname: 이경진) or a foreign one (a given and a family name: 빌
    클린턴). Kiwi also tags loanwords (클라우드, 버티컬) as proper nouns, so a bare proper noun
    is not enough for "who"."""
    if len(t.form) == 3 and _hangul_length(t.form) == 3 and t.form[0] in _SURNAMES:
        return True
    return nxt.tag == "NNP" and nxt.start == t.end + 1


def _hangul_length(text: str) -> int:
    return sum("\uac00" <= c <= "\ud7a3" for c in text)
