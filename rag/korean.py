"""Korean text processing with Kiwi: sentence spans and content morphemes for BM25."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

# Morpheme tags kept for lexical search: nouns, numerals, verb/adjective stems, roots,
# foreign words, numbers and hanja. Particles, endings, affixes and punctuation are dropped.
# Chosen on KorQuAD 1.0 dev (benchmarks/bench_korquad.py; numbers in the README).
CONTENT_TAGS = frozenset(
    {"NNG", "NNP", "NNB", "NR", "NP", "VV", "VA", "XR", "SL", "SN", "SH", "W_HASHTAG"}
)

_lock = threading.Lock()


@functools.cache
def kiwi() -> Kiwi:
    """The shared Kiwi analyzer (loading it takes about a second)."""
    from kiwipiepy import Kiwi

    return Kiwi()


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``, never crossing a line break.

    Kiwi finds Korean sentence ends ("...했다" without a period, quotes, "다." inside
    numbers) that a period splitter gets wrong; lines are split first because scraped
    articles put headings and captions on their own lines without punctuation.
    """
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped:
            base = offset + (len(line) - len(line.lstrip()))
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
    """`morphemes` for many texts at once (Kiwi analyzes a batch faster)."""
    with _lock:
        analyzed: Iterable = kiwi().tokenize(list(texts))
        return [_content(tokens) for tokens in analyzed]


def _content(tokens: Iterable) -> list[str]:
    out = []
    for t in tokens:
        tag = t.tag.split("-")[0]  # "VV-R" / "VA-I": regular/irregular conjugation marks
        if tag in CONTENT_TAGS:
            out.append(t.form.lower() if tag == "SL" else t.form)
    return out
