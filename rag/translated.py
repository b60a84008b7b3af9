"""English names a Korean passage translates: "Trade Day" is 무역의날, "Export Tower" 수출의탑.

`rag.names` finds a name a passage spells (Kakao Brain, 카카오브레인) and `rag.places` one
it translates from a table (Poland, 폴란드); a name made of English words (`names.translatable`)
may be translated word by word instead, and no offline dictionary holds such names. The
multilingual embedding model does: a name and its translation are close, but so are many
pairs of words, since some words are near everything (hubs). Each cosine is therefore
corrected for how close each side is to a fixed set of everyday words in the other language
(CSLS, Conneau et al. 2018, "Word translation without parallel data", with fixed reference
words in place of nearest neighbours):

    score(name, phrase) = 2 cos(name, phrase) - mean cos(name, KOREAN) - mean cos(phrase, ENGLISH)

A phrase is a run of the window's nouns (up to `MAX_PIECES`, joined through 의 as in 무역의날).
A name that opens with a proper name and ends in English words (Busan Savings Bank) is spelt
in part and translated in part (부산저축은행): only its English words are scored, against what
follows the proper name in the window's names that open with it (저축은행).
`MIN_SCORE` was chosen on the English questions of evals/dev_wikinews.jsonl
(benchmarks/bench_translated.py; ``--hybrid`` for the names spelt in part) for
`answerable.DENSE_MODEL` only.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .embed import Embedder
from .korean import Token
from .names import hangul_names, hybrid, prefixed, translatable
from .support import text_vectors

MIN_SCORE = 0.12
MAX_PIECES = 3

# The same 30 everyday nouns in both languages, none of them a name: a text's mean cosine to
# one list measures how near it is to everything in that language, not to a translation.
ENGLISH = (
    "time people year government company market country city report state group price plan "
    "day week policy team game world money police president party law court school water "
    "case news power"
).split()
KOREAN = (
    "시간 사람 연도 정부 회사 시장 나라 도시 보고서 국가 단체 가격 계획 날 주 정책 팀 경기 세계 "
    "돈 경찰 대통령 정당 법 법원 학교 물 사건 뉴스 힘"
).split()
_HANGUL = re.compile("[\uac00-\ud7a3]")
_NOUNS = frozenset({"NNG", "NNP", "SL", "SH", "XSN"})

Embed = Callable[[Sequence[str]], np.ndarray]


class Translations:
    """Finds which of a window's Korean phrases translates an English name, with vectors
    from ``embed`` (unit rows, one per text: `rag.support.text_vectors`, which keeps them)."""

    def __init__(self, embed: Embed) -> None:
        self._embed = embed

    @classmethod
    def of(cls, embedder: Embedder) -> Translations:
        """With ``embedder``'s passage vectors, each text embedded once per process
        (`rag.support.text_vectors`)."""
        return cls(lambda texts: text_vectors(embedder, texts))

    @functools.cached_property
    def _references(self) -> tuple[np.ndarray, np.ndarray]:
        """The vectors of `KOREAN` and of `ENGLISH`, fetched once, not for every window."""
        korean, english = np.split(self._embed([*KOREAN, *ENGLISH]), [len(KOREAN)])
        return korean, english

    def best(self, name: str, tokens: list[Token]) -> tuple[float, str]:
        """The highest `score` of ``name`` against what ``tokens`` may translate it with,
        and that Korean name ("" when they hold none):
        - a name made of English words (`names.translatable`: Trade Day) against the
          phrases of ``tokens``;
        - one that opens with a proper name and ends in English words (`names.hybrid`:
          Busan Savings Bank) against the names of ``tokens`` that open with that name in
          Hangul (`names.prefixed`: 부산저축은행), by the rest (Savings Bank, 저축은행).
        """
        if translatable(name):
            return self._best(name, sorted(phrases(tokens)))
        split = hybrid(name)
        if split is None:
            return 0.0, ""
        head, tail = split
        found = prefixed(head, hangul_names(tokens))
        score, rest = self._best(tail, sorted({rest for _, rest in found}))
        return score, next((whole for whole, r in found if r == rest), "")

    def _best(self, name: str, candidates: list[str]) -> tuple[float, str]:
        if not candidates:
            return 0.0, ""
        vectors = self._embed([name, *candidates])
        named, found = vectors[0], vectors[1:]
        korean, english = self._references
        scores = 2 * (found @ named) - (korean @ named).mean() - (found @ english.T).mean(axis=1)
        i = int(np.argmax(scores))
        return float(scores[i]), candidates[i]


def phrases(tokens: Iterable[Token]) -> set[str]:
    """Runs of up to `MAX_PIECES` nouns, written together, 의 kept between two nouns
    (무역의날). A phrase holds Hangul: Latin text is compared as written (`rag.names`),
    and one letter alone is no phrase."""
    out: set[str] = set()
    run: list[str] = []
    tokens = list(tokens)
    for i, t in enumerate(tokens):
        noun = t.tag in _NOUNS
        joins = t.form == "의" and bool(run) and i + 1 < len(tokens) and tokens[i + 1].tag in _NOUNS
        if noun or joins:
            run.append(t.form)
        if not (noun or joins) or i == len(tokens) - 1:
            out.update(_pieces(run))
            run = []
    return {p for p in out if len(p) > 1 and _HANGUL.search(p)}


def _pieces(run: list[str]) -> Iterable[str]:
    """Each stretch of up to `MAX_PIECES` of ``run`` that neither opens nor ends with 의."""
    for a in range(len(run)):
        for b in range(a + 1, min(len(run), a + MAX_PIECES) + 1):
            if run[a] != "의" and run[b - 1] != "의":
                yield "".join(run[a:b])
