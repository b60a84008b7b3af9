"""Korean text processing with Kiwi: sentence spans and content morphemes for BM25."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

# Morpheme tags kept for lexical search: nouns, numerals, verb/adjective stems, roots,
# foreign words, numbers and hanja. Particles, endings, affixes and punctuation are dropped.
# Chosen on KorQuAD 1.0 dev (benchmarks/bench_korquad.py; numbers in docs/benchmarks.md).
CONTENT_TAGS = frozenset(
    {"NNG", "NNP", "NNB", "NR", "NP", "VV", "VA", "XR", "SL", "SN", "SH", "W_HASHTAG"}
)

_lock = threading.Lock()


# Kiwi's multi-word dictionary ("쇼와 천황" as one proper noun) takes 195 MB of the 480 MB
# Kiwi uses. Without it, BM25 alone on KorQuAD 1.0 dev scores the same (R@1 0.903 either way,
# R@5 0.984 vs 0.985, paragraphs and questions analyzed alike); the index always split such
# entries into their words anyway. (docs/search-at-scale.md has the end-to-end numbers.)
KIWI_OPTIONS = {"load_multi_dict": False}
KIWI_DICTIONARIES = "without the multi-word dictionary"  # as the index manifest records it


@functools.cache
def kiwi() -> Kiwi:
    """The shared Kiwi analyzer (loading it takes about a second)."""
    from kiwipiepy import Kiwi

    return Kiwi(**KIWI_OPTIONS)


# Kiwi's time grows faster than linearly with the length of one input (issue 10's probe: one
# 80,000-character line took 4.9 s to split into sentences, 160,000 took 19.4 s), inside one
# C call that Ctrl-C cannot interrupt. Text longer than this is analyzed in windows of at
# most this many characters, each cut after a sentence end or at a space near its end, so
# sentences are only cut where a line has no break for hundreds of characters. Scraped
# article lines (the seeds' longest: 634) and KorQuAD dev paragraphs (longest: 2,946) go to
# Kiwi whole, as before; a window of the slowest text measured ("가" repeated) takes about a
# second.
WINDOW_CHARS = 3000
_LOOK_BACK = 500  # how far before a window's end to look for a place to cut
_SENTENCE_BREAK = re.compile(r"[.!?。？！…][\"'”’)\]]*\s+")
_SPACE = re.compile(r"\s+")


def windows(text: str, size: int = WINDOW_CHARS) -> list[tuple[int, int]]:
    """Spans of ``text``, in order and covering it, none longer than ``size`` characters.

    Each cut is after the last sentence end followed by whitespace in the last ``_LOOK_BACK``
    characters of a window, else after its last whitespace, else at the limit.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > size:
        limit = start + size
        low = max(start + 1, limit - _LOOK_BACK)
        cut = limit
        for pattern in (_SENTENCE_BREAK, _SPACE):
            ends = [m.end() for m in pattern.finditer(text, low, limit)]
            if ends:
                cut = ends[-1]
                break
        spans.append((start, cut))
        start = cut
    spans.append((start, len(text)))
    return spans


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``, never crossing a line break.

    Kiwi finds Korean sentence ends ("...했다" without a period, quotes, "다." inside
    numbers) that a period splitter gets wrong; lines are split first because scraped
    articles put headings and captions on their own lines without punctuation, and a line
    longer than `WINDOW_CHARS` is split in `windows`.
    """
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        for a, b in windows(line):
            part = line[a:b]
            stripped = part.strip()
            if not stripped:
                continue
            base = offset + a + (len(part) - len(part.lstrip()))
            with _lock:
                sents = kiwi().split_into_sents(stripped)
            for s in sents:
                start, end = base + s.start, base + s.end
                while end > start and text[end - 1].isspace():
                    end -= 1
                if end > start:
                    spans.append((start, end))
        offset += len(line)
    return spans


def morphemes(text: str) -> list[str]:
    """Content morphemes of ``text`` for BM25 (Latin lowercased)."""
    return morphemes_batch([text])[0]


def morphemes_batch(texts: Sequence[str]) -> list[list[str]]:
    """`morphemes` for many texts at once (Kiwi analyzes a batch faster).

    A text longer than `WINDOW_CHARS` is analyzed in `windows`, so no single Kiwi call runs
    long and Ctrl-C is seen between them.
    """
    pieces: list[str] = []
    owners: list[int] = []
    for i, text in enumerate(texts):
        for a, b in windows(text):
            pieces.append(text[a:b])
            owners.append(i)
    out: list[list[str]] = [[] for _ in texts]
    with _lock:
        analyzed: Iterable = kiwi().tokenize(pieces)
        for owner, tokens in zip(owners, analyzed, strict=True):
            out[owner].extend(_content(tokens))
    return out


@functools.cache
def english_stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS)


def _content(tokens: Iterable) -> list[str]:
    out = []
    for t in tokens:
        tag = t.tag.split("-")[0]  # "VV-R" / "VA-I": regular/irregular conjugation marks
        if tag == "SL":
            # English function words ("the", "of") occur in a few Korean articles; as query
            # terms they would match those articles for every English question.
            word = t.form.lower()
            if word not in english_stopwords():
                out.append(word)
        elif tag in CONTENT_TAGS:
            # Multi-word dictionary entries ("쇼와 천황") are one token with a space: index
            # and query both take its words, as the space-joined terms column always did.
            out.extend(t.form.split())
    return out


def entity_phrases(text: str) -> list[str]:
    """Names in ``text`` as written: proper nouns ("카카오엔터프라이즈") and capitalized
    foreign words ("Kakao Enterprise"), adjacent pieces joined."""
    with _lock:
        tokens = kiwi().tokenize(text)
    spans: list[list[int]] = []
    for t in tokens:
        name = t.tag == "NNP" or (
            t.tag == "SL" and t.form[:1].isupper() and t.form.lower() not in english_stopwords()
        )
        if not name:
            continue
        if spans and t.start - spans[-1][1] <= (1 if t.tag == "SL" else 0):
            spans[-1][1] = t.start + t.len
        else:
            spans.append([t.start, t.start + t.len])
    return [text[a:b] for a, b in spans]


class Token(NamedTuple):
    """A Kiwi morpheme: its form, tag (without the conjugation mark) and character span."""

    form: str
    tag: str
    start: int
    end: int


def tagged_batch(texts: Sequence[str]) -> list[list[Token]]:
    """Every morpheme of each text with its tag, for checks that need the tags (answerability)."""
    with _lock:
        analyzed: Iterable = kiwi().tokenize(list(texts))
        return [
            [Token(t.form, t.tag.split("-")[0], t.start, t.start + t.len) for t in tokens]
            for tokens in analyzed
        ]
