"""Does a passage support a sentence? The evidence (passage sentences, their Kiwi terms and
e5 vectors) and the verdict; the rules that decide live in `rag.rules`, on the features that
`rag.claims` and `rag.quantities` read.

Shared by the extractive answerer (which picks the sentences that answer a question), the
citation verifier (which checks every cited sentence against its passages) and the refusal
decision (which asks whether any passage is about the question at all).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .embed import Embedder
from .korean import _content, passage_sentences, tagged
from .memo import Memo

if TYPE_CHECKING:
    from .claims import Analysis

# Words that say what kind of answer is wanted, not what it is about.
QUESTION_WORDS = frozenset(
    {
        *"누구 무엇 뭐 언제 어디 얼마 얼마나 몇 왜 어떻게 어떤 무슨 어느".split(),
        *"이유 원인 배경 것 수 등 때문".split(),
        *"what who whom whose when where which why how much many".split(),
        *"does did do is are was were the a an of in on to for by with about and or".split(),
    }
)
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_DOTTED = re.compile(r"(?<![\d.])(\d{1,2})[·・∙‧](\d{1,2})(?![\d.])")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_LETTER = re.compile(r"[^\W\d_]")

# A sentence is supported by a window of a cited passage when most of its content words occur
# there, or when it means nearly the same as one of the window's sentences and shares a word,
# name or number with it; the rules in `rag.rules` must find nothing wrong either way.
# MIN_SEMANTIC was calibrated on the seed articles: faithful English renderings of Korean
# sentences score 0.82-0.84 (e5 query vs passage), unrelated claims 0.73-0.77.
MIN_LEXICAL = 0.5
MIN_SEMANTIC = 0.80


def language(text: str) -> str:
    """``ko`` when a good share of the letters are Hangul, else ``en``."""
    letters = _LETTER.findall(text)
    hangul = _HANGUL.findall(text)
    return "ko" if letters and len(hangul) / len(letters) >= 0.3 else "en"


def numbers(text: str) -> set[str]:
    """Numbers written in ``text``, normalized ("1,633" -> "1633"); an event Korean names by
    its date with a middle dot (5·18, 3·1절) as typed with a full stop too (5.18)."""
    found = {m.replace(",", "") for m in _NUMBER.findall(text)}
    return found | {f"{a}.{b}" for a, b in _DOTTED.findall(text)}


def key_terms(texts: Sequence[str]) -> list[set[str]]:
    """Content morphemes of each text (as `rag.korean.morphemes` reads them, from the
    cached analysis), without question words."""
    return [set(_content(tokens)) - QUESTION_WORDS for tokens in tagged(texts)]


@dataclass
class Sentence:
    """A sentence of a numbered passage, with where it sits in that passage."""

    n: int
    start: int
    end: int
    text: str


@dataclass
class Verdict:
    """The support check's answer for one claim, with why.

    ``reason`` is ``lexical`` or ``semantic`` (supported by the words or the meaning of a
    window), ``judge`` (settled by the LLM judge), or what failed: ``number`` (a quantity
    the window doesn't have), ``entity`` (a name it doesn't have), ``direction`` ("from A to
    B" reversed, or a rise told as a fall), ``negation``, ``subject`` (the window says it of
    someone else), ``overlap`` (too few of the claim's words) or ``no-passage``.
    """

    supported: bool
    score: float
    reason: str
    passage: int | None = None
    window: str = ""


# A judge settles what the rules cannot: (claim, window text) -> entailed, or None when it
# cannot say (then the rules' verdict stands). See `rag.judge.Judge`.
JudgeFn = Callable[[str, str], "bool | None"]


@dataclass
class Evidence:
    """The sentences of the passages shown to an answerer, embedded once and reused."""

    embedder: Embedder
    passages: Sequence[str]
    sentences: list[Sentence] = field(default_factory=list)
    judge: JudgeFn | None = None
    #: Passage n's byline ("고민서 기자"), if its article prints one (`Hit.byline`).
    bylines: Sequence[str | None] = ()
    #: Each sentence's content morphemes (`key_terms`).
    terms: list[set[str]] = field(default_factory=list)
    _vectors: np.ndarray | None = None
    _analyses: list[Analysis] | None = None

    def __post_init__(self) -> None:
        for n, text in enumerate(self.passages, 1):
            spans = passage_sentences(text)
            self.sentences.extend(Sentence(n, a, b, text[a:b]) for a, b in spans)
        self.terms = key_terms([s.text for s in self.sentences])

    @property
    def vectors(self) -> np.ndarray:
        if self._vectors is None:
            self._vectors = text_vectors(self.embedder, [s.text for s in self.sentences])
        return self._vectors

    @property
    def analyses(self) -> list[Analysis]:
        """What each sentence asserts (`rag.claims.Analysis`), computed on first use."""
        if self._analyses is None:
            from .claims import analyze

            self._analyses = analyze([s.text for s in self.sentences])
        return self._analyses

    def similarity(self, text: str) -> np.ndarray:
        """Cosine of ``text`` (embedded as a query) with every sentence."""
        if not self.sentences:
            return np.zeros(0, dtype=np.float32)
        return self.vectors @ self.embedder.embed_query(text)

    def overlap(self, terms: set[str]) -> np.ndarray:
        """Share of ``terms`` found in each sentence: as one of its morphemes, or (a Korean
        word of two letters or more) in its text with the spaces taken out, since Korean
        spacing varies and Kiwi cuts a compound by it ("아시아나항공" in "아시아나 항공을").
        On every third KorQuAD 1.0 dev question, the gold span in the answer's first sentence
        went 0.828 -> 0.830 (tuning half) and 0.827 -> 0.835 (held out)."""
        if not terms:
            return np.zeros(len(self.sentences), dtype=np.float32)
        korean = [t for t in terms if len(t) >= 2 and _HANGUL.search(t)]
        shares = []
        for s, said in zip(self.sentences, self.terms, strict=True):
            plain = "".join(s.text.split())
            found = len(terms & said) + sum(t not in said and t in plain for t in korean)
            shares.append(found / len(terms))
        return np.array(shares, dtype=np.float32)

    def with_judge(self, judge: JudgeFn | None) -> Evidence:
        """This evidence (sentences, vectors and analyses shared) with ``judge`` set."""
        if judge is self.judge:
            return self
        _ = self.analyses  # analyzed once, on the cached original, and shared with the twin
        twin = copy.copy(self)
        twin.judge = judge
        return twin

    def support(self, sentence: str, cited: Sequence[int]) -> tuple[bool, float]:
        """Whether the passages numbered ``cited`` support ``sentence``, and the score."""
        verdict = self.check(sentence, cited)
        return verdict.supported, verdict.score

    def check(self, sentence: str, cited: Sequence[int]) -> Verdict:
        """`support` with the reason: see `Verdict` and `rag.rules.check`. Who wrote a
        passage is not in its text (the cleaner keeps the byline apart), so a sentence its
        text does not support is checked against the cited passages' bylines, stated alone
        (in a window with the text's sentences, "이경진 기자가 썼다" would pass on the byline
        beside a sentence naming 이경진)."""
        from .rules import check

        verdict = check(self, sentence, cited)
        signed = tuple(
            f"이 기사는 {self.bylines[n - 1]}가 썼다."
            for n in cited
            if 0 < n <= len(self.bylines) and self.bylines[n - 1]
        )
        if verdict.supported or not signed:
            return verdict
        byline = check(evidence_for(self.embedder, signed), sentence, range(1, len(signed) + 1))
        return byline if byline.supported else verdict


@functools.lru_cache(maxsize=8)
def evidence_for(
    embedder: Embedder, passages: tuple[str, ...], bylines: tuple[str | None, ...] = ()
) -> Evidence:
    """The `Evidence` for these passages (and their bylines); the answerer and the citation
    check share it, so the passages are split and analyzed once per question."""
    return Evidence(embedder, passages, bylines=bylines)


# Sentence vectors by (embedder spec, text), each embedded once per process (`rag.memo`).
_VECTORS: Memo[tuple[str, str], np.ndarray] = Memo(size=20_000)
_ROUGH_END = re.compile(r"(?<=[.!?])\s+")


def prefetch_sentences(embedder: Embedder, passages: Sequence[str]) -> None:
    """Embed the sentences of ``passages``, split at full stops without Kiwi, into the cache
    `Evidence` reads: Kiwi's sentences are mostly these (`rag.asking.Asking.ask_stream`
    embeds the passages dense search ranks first while Kiwi still loads)."""
    rough = [s for p in passages for line in p.split("\n") for s in _ROUGH_END.split(line)]
    text_vectors(embedder, [s.strip() for s in rough if s.strip()])


def text_vectors(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """``texts`` embedded as passages, each once per process and, with an embedder whose
    vectors depend on their batch, alone: the same vectors whatever was asked before."""
    if not texts:
        return np.zeros((0, embedder.dim), np.float32)
    keys = [(embedder.spec, t) for t in texts]

    def embed(missing: list[tuple[str, str]]) -> list[np.ndarray]:
        if embedder.batch_independent:
            return list(embedder.embed_passages([t for _, t in missing]))
        # A kept vector is reused by later questions: one that depended on its batch made
        # an answer depend on the questions asked before it in the same process, and `rag
        # eval` measure other answers than `rag ask` gives (6 of 127 seed questions).
        # Alone, each is what any process computes (35 ms more a question).
        return [embedder.embed_passages([t])[0] for _, t in missing]

    return np.stack(_VECTORS.get(keys, embed))
