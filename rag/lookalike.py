"""Which names a question asks about, and whether a window names them or a look-alike.

A question's entities are its runs of adjacent nouns holding a proper noun or a capitalised
Latin word, and the words it writes together that end like a name the passages hold but
open otherwise (삼화저축은행 beside 부산저축은행). A window misses an entity when it names a
look-alike instead (카카오엔터프라이즈 for 카카오브레인, 부산저축은행 for 대전저축은행), or
when neither it nor its passage names it; a name the index never holds may be the user's
typo for one a letter off (헤리슨 for 해리슨). The answer a window holds (a name, date,
amount) must sit in a sentence naming no look-alike of the question's entity. Used by
`rag.answerable`, which weighs the rest of the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import institutions
from .kinds import holds_kind
from .korean import Token
from .names import match_names, misspelt_in
from .places import OTHER_NAMES
from .support import QUESTION_WORDS

_NOUNS = frozenset({"NNP", "NNG", "SL", "SH", "XR"})


@dataclass
class Sentence:
    """A sentence of passage ``n`` (1-based): its span in the passage's text, tokens, text."""

    n: int
    start: int
    end: int
    tokens: list[Token]
    text: str


@dataclass
class Question:
    """A question as `rag.answerable` analyses it: its weighted words, names and asked kind."""

    text: str
    lang: str
    kind: str
    terms: dict[tuple[str, str], float]  # (form, tag) -> weight
    runs: dict[str, str]  # a noun's form -> the run of adjacent nouns it is written in
    head: tuple[str, str] | None  # the noun naming the kind of answer ("사람", "장소")
    entities: list[str]
    compounds: list[str]  # nouns written together, no entity: perhaps a name Kiwi misread
    unknown: set[str]  # entities no chunk of the index holds: perhaps misspelt
    numbers: set[str]
    measure: str  # what the number asked for measures (`rag.kinds.asked_measure`)


# -- the question's names ----------------------------------------------------------------


def noun_runs(tokens: list[Token], tags: frozenset[str] = _NOUNS) -> list[list[Token]]:
    """Runs of nouns written together ("카카오브레인" is 카카오/NNP + 브레인/NNG), or with
    ``tags``, of tokens of those tags."""
    runs: list[list[Token]] = []
    for t in tokens:
        if t.tag not in tags:
            continue
        if runs and runs[-1][-1].end == t.start:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


# Tags of the pieces Kiwi may cut an unknown name into (삼화저축은행: 삼/NR 화/NNB 저축 은행).
_PIECES = frozenset({"NNP", "NNG", "NR", "NNB", "SL", "SH", "XR", "SN"})


def compounds(text: str, tokens: list[Token], entities: list[str]) -> list[str]:
    """Nouns (or pieces of one) written together, as written, that are no entity and hold
    no part of one: a name Kiwi did not know may be among them (see `names_by_ending`)."""
    written = [
        text[r[0].start : r[-1].end]
        for r in noun_runs(tokens, _PIECES)
        if len(r) > 1 and any(t.tag in ("NNG", "NNP") for t in r)
    ]
    return [w for w in written if not any(w in e or e in w for e in entities)]


def names_by_ending(q: Question, sentences: list[Sentence]) -> list[str]:
    """The question's `compounds` that name an entity: those the passages write too, ending
    like a name they hold that opens otherwise (삼화저축은행 beside 부산저축은행). Kiwi reads
    a name it does not know as common nouns (삼/NR 화/NNB 저축/NNG 은행/NNG), which would
    leave the question with no entity, and a window about 부산저축은행 answering it. A
    compound the passages never write may be misspelt (주민민주주의인민공화국 for
    조선민주주의인민공화국 in a KorQuAD question) and is left to the word coverage."""
    if not q.compounds:
        return []
    names = {n for s in sentences for n in _name_runs(s.tokens)}
    written = nospace(" ".join(s.text for s in sentences))
    return [
        c
        for c in q.compounds
        if nospace(c) in written
        and any(_looks_alike(n, nospace(c)) and n[:2] != nospace(c)[:2] for n in names)
    ]


def entities(text: str, tokens: list[Token]) -> list[str]:
    """Runs of adjacent nouns holding a proper noun or a capitalised Latin word, as written
    ("카카오브레인" is 카카오/NNP + 브레인/NNG), or naming a public body (공정거래위원회 is
    공정/거래/위원회, common nouns all; `rag.institutions`)."""
    bodies = institutions.korean_bodies()
    names = [
        text[r[0].start : r[-1].end]
        for r in noun_runs(tokens)
        if any(t.tag == "NNP" or (t.tag == "SL" and t.form[:1].isupper()) for t in r)
        or "".join(t.form for t in r) in bodies
    ]
    return [n for n in names if n.lower() not in QUESTION_WORDS]


# -- in a window -------------------------------------------------------------------------


def missing_entity(
    q: Question,
    plain: str,
    tokens: list[Token],
    passage: str,
    article: str = "",
    names: frozenset[str] = frozenset(),
) -> str:
    """Why the window does not name the question's entities ("" when it does).

    An entity named elsewhere in the passage (the article's subject, referred to as "그"
    near the answer) is enough, and so is a person the window calls by surname and title
    as the rest of ``article`` (its retrieved passages, whose proper nouns are ``names``)
    introduces them (`by_surname`);
    unless the window names a look-alike instead: a different name opening with the same
    two syllables (카카오엔터프라이즈 for 카카오브레인). A name the index never holds may
    be written a letter or two off (`spelt`).
    """
    for e in q.entities:
        wanted = nospace(e)
        if written_in(wanted, plain) or spelt(q, wanted, plain):
            continue
        near = [n for n in _name_runs(tokens) if _looks_alike(n, wanted, wanted not in q.unknown)]
        if near:
            return f"'{e}' is not named in the window, only {near[0]}"
        if written_in(wanted, passage) or spelt(q, wanted, passage):
            continue
        if not by_surname(wanted, tokens, article, names):
            return f"'{e}' is not named in the passage"
    return ""


# How far after a person's full name their title may follow ("이경진 카카오엔터프라이즈 신임
# 대표이사 내정자": 신임 is 14 characters on).
_TITLE_AFTER = 20


def by_surname(name: str, tokens: list[Token], article: str, names: frozenset[str]) -> bool:
    """Whether ``tokens`` call the person ``name`` by surname and title, as Korean news does
    after naming them in full once ("이경진 카카오엔터프라이즈 신임 대표이사 내정자가 ...",
    then "이 신임 대표이사 내정자는 ..."): a one-letter proper noun, the name's first letter,
    followed by a noun that follows the full name in ``article``, and follows no other name
    of that surname among its proper nouns ``names`` (김 위원장 is not 김격식 where the
    article also names 김정일 국방위원장). Another 이 (이상호) is not named so: the article
    never writes it in full."""
    if not _hangul_name(name):
        return False
    others = [n for n in names if n[0] == name[0] and n != name and _hangul_name(n)]

    def titled(person: str, title: str) -> bool:
        return any(
            title in article[m.end() : m.end() + _TITLE_AFTER]
            for m in re.finditer(re.escape(person), article)
        )

    for i, t in enumerate(tokens[:-1]):
        if t.tag != "NNP" or t.form != name[0]:
            continue
        for title in tokens[i + 1 :]:
            if title.tag != "NNG":
                break
            if titled(name, title.form) and not any(titled(o, title.form) for o in others):
                return True
    return False


def _hangul_name(name: str) -> bool:
    return 2 <= len(name) <= 4 and all("가" <= ch <= "힣" for ch in name)


def spelt(q: Question, wanted: str, text: str) -> bool:
    """Whether ``text`` names entity ``wanted``, which the index never holds, spelt a
    letter or two otherwise (the user's typo: 헤리슨 for 해리슨)."""
    return wanted in q.unknown and bool(misspelt_in(wanted, text))


def answer_beside_lookalike(
    q: Question,
    window: list[Sentence],
    lookalike: Callable[[Sentence], str],
    given: Sequence[str] = (),
) -> str:
    """Why the answer in the window is not about the question's entity ("" when it may be).

    The window may name the entity in one sentence and hold a name (or date, amount) in the
    next, where that name goes with a look-alike entity instead ("카카오브레인 ..." then "이경진
    카카오엔터프라이즈 대표이사 ..."): the answer must sit in a sentence naming no look-alike.
    """
    if q.kind == "other":
        return ""
    exclude = nospace(" ".join([q.text, *given]))
    holding = [s for s in window if holds_kind(q.kind, s.tokens, exclude, q.measure)]
    conflicts = [lookalike(s) for s in holding]
    if holding and all(conflicts):
        return f"the {q.kind} in the window goes with {conflicts[0]}"
    return ""


def korean_lookalike(q: Question, sentence: Sentence) -> str:
    plain = nospace(sentence.text)
    runs = _name_runs(sentence.tokens)
    for e in q.entities:
        wanted = nospace(e)
        if written_in(wanted, plain):
            continue
        near = [n for n in runs if _looks_alike(n, wanted, wanted not in q.unknown)]
        if near:
            return f"{near[0]}, not '{e}'"
    return ""


# A shared ending this long makes two names look alike (부산저축은행 for 대전저축은행).
LOOKALIKE_SUFFIX = 2


def _looks_alike(name: str, wanted: str, by_ending: bool = True) -> bool:
    """Whether ``name`` is another entity like ``wanted``: it opens with the same two
    syllables (카카오엔터프라이즈 for 카카오브레인), or, with ``by_ending``, ends with the same
    kind of name after one that starts otherwise (부산저축은행 for 대전저축은행, LG전자 for
    삼성전자; not 보로디노 for 보르디노, which is more likely misspelt: a name the index
    never holds is compared by its opening only). A vowel that sounds like another is the
    same (패이스북 is 페이스북: `_merged`)."""
    name, wanted = _merged(name), _merged(wanted)
    if wanted.startswith(name) or name.startswith(wanted):
        return False
    if name[:2] == wanted[:2]:
        return True
    if not (by_ending and LOOKALIKE_SUFFIX) or name[0] == wanted[0]:
        return False
    shared = 0
    while shared < min(len(name), len(wanted)) and name[-1 - shared] == wanted[-1 - shared]:
        shared += 1
    return shared >= LOOKALIKE_SUFFIX and shared < min(len(name), len(wanted))


def english_lookalike(names: list[str], sentence: Sentence, given: Sequence[str] = ()) -> str:
    _, _, near = match_names(names, sentence.tokens, sentence.text, given)
    return f"{near[1]}, not '{near[0]}'" if near else ""


def _name_runs(tokens: list[Token]) -> list[str]:
    """Maximal runs of adjacent nouns holding a proper noun, joined ("카카오브레인")."""
    return ["".join(t.form for t in r) for r in noun_runs(tokens) if any(t.tag == "NNP" for t in r)]


def written_in(wanted: str, text: str) -> bool:
    """Whether ``text`` (without white space) writes name ``wanted``, spelt with either
    vowel of a pair that sounds the same (`_merged`), or with a title the question writes in
    Latin letters written out in Korean (`_SPELLED_OUT`)."""
    spellings = _spellings(wanted)
    if any(v in text for v in spellings):
        return True
    merged = _merged(text)
    return any(_merged(v) in merged for v in spellings)


# Titles and terms a Korean question writes in Latin letters where articles mostly write
# them in Korean: "노키아 CEO" is 노키아의 최고경영자 (or 대표이사) in the article.
_SPELLED_OUT = {
    "CEO": ("최고경영자", "대표이사", "대표"),
    "CFO": ("최고재무책임자",),
    "CTO": ("최고기술책임자",),
    "COO": ("최고운영책임자",),
    "AI": ("인공지능",),
}
_ACRONYM = re.compile(rf"(?<![A-Za-z])({'|'.join(_SPELLED_OUT)})(?![A-Za-z])", re.I)


def _spellings(wanted: str) -> list[str]:
    """``wanted`` as written, with its title acronym spelled out each way, with its
    country's or city's other name (북한군: 조선민주주의인민공화국군; 서울시청: 서울특별시청),
    and with a public body's (한은: 한국은행; `rag.institutions`)."""
    found = _ACRONYM.search(wanted)
    spellings = [wanted]
    if found:
        head, tail = wanted[: found.start()], wanted[found.end() :]
        spellings += [head + k + tail for k in _SPELLED_OUT[found[1].upper()]]
    for name, others in OTHER_NAMES.items():
        if wanted.startswith(name):
            spellings += [other + s[len(name) :] for s in list(spellings) for other in others]
            break
    spellings += [other for s in list(spellings) for other in institutions.written_otherwise(s)]
    return spellings


# Vowels that Seoul Korean no longer tells apart, so writers mix them up in names (the
# article's 패이스북 is the question's 페이스북): ㅐ and ㅔ, ㅒ and ㅖ, ㅙ, ㅚ and ㅞ.
# Syllable = 0xAC00 + (initial * 21 + vowel) * 28 + final; vowels numbered from ㅏ = 0.
_SAME_SOUND = {1: 5, 3: 7, 10: 15, 11: 15}
_MERGED = {
    0xAC00 + (initial * 21 + vowel) * 28 + final: 0xAC00 + (initial * 21 + to) * 28 + final
    for initial in range(19)
    for vowel, to in _SAME_SOUND.items()
    for final in range(28)
}


def _merged(text: str) -> str:
    """``text`` with each vowel of a same-sounding pair written as one (패 -> 페, 왜 -> 웨)."""
    return text.translate(_MERGED)


def nospace(text: str) -> str:
    """``text`` without white space: names and words are compared whatever the spacing."""
    return "".join(text.split())
