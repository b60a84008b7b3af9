"""Sentence-aware chunking: whole Korean sentences packed up to an embedder token budget."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from .korean import sentence_spans
from .records import Chunk

CountTokens = Callable[[str], int]


def header(title: str | None, date: dt.date | None) -> str:
    """The line put before each chunk's text when it is embedded and BM25-indexed.

    It lets a passage deep in an article still match the article's subject and date.
    """
    parts = [p for p in (title, date.isoformat() if date else None) if p]
    return " | ".join(parts)


def retrieval_text(head: str, text: str) -> str:
    """What the embedder and BM25 see for one chunk."""
    return f"{head}\n{text}" if head else text


def chunk_text(
    doc_id: str,
    text: str,
    count_tokens: CountTokens,
    max_tokens: int,
    head: str = "",
    overlap: int = 1,
) -> list[Chunk]:
    """Split ``text`` into chunks of whole sentences.

    Args:
        doc_id: The document the chunks belong to.
        text: Cleaned article text; chunk spans are offsets into it.
        count_tokens: The embedder's token counter (prefix and special tokens included).
        max_tokens: Budget for a chunk's retrieval text, header included.
        head: The header that will be prepended (its tokens count against the budget).
        overlap: Sentences repeated at the start of the next chunk, for context.

    Returns:
        Chunks in document order; ``text[c.start:c.end] == c.text``.
    """
    base = count_tokens("")
    budget = max_tokens - count_tokens(head + "\n") if head else max_tokens
    pieces: list[tuple[int, int, int]] = []  # (start, end, tokens without the base)
    for start, end in sentence_spans(text):
        n = count_tokens(text[start:end]) - base
        if n <= budget - base:
            pieces.append((start, end, n))
        else:
            pieces.extend(_split_long(text, start, end, count_tokens, base, budget - base))

    chunks: list[Chunk] = []
    i = 0
    while i < len(pieces):
        j, used = i, 0
        while j < len(pieces) and (j == i or used + pieces[j][2] <= budget - base):
            used += pieces[j][2]
            j += 1
        # Token counts of pieces only add up approximately; the exact count decides.
        while True:
            start, end = pieces[i][0], pieces[j - 1][1]
            tokens = count_tokens(retrieval_text(head, text[start:end]))
            if tokens <= max_tokens or j == i + 1:
                break
            j -= 1
        chunks.append(
            Chunk(
                doc_id=doc_id,
                ordinal=len(chunks),
                start=start,
                end=end,
                text=text[start:end],
                tokens=tokens,
            )
        )
        if j >= len(pieces):
            break
        # Step back `overlap` sentences, but always move forward.
        i = max(j - overlap, i + 1)
    return chunks


def _split_long(
    text: str, start: int, end: int, count_tokens: CountTokens, base: int, budget: int
) -> list[tuple[int, int, int]]:
    """Cut a sentence longer than the budget at word boundaries (tables, run-on lists)."""
    out: list[tuple[int, int, int]] = []
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    piece_start, used, last_end = words[0][0], 0, words[0][0]
    for w_start, w_end in _fit_words(text, words, count_tokens, base, budget):
        n = count_tokens(text[w_start:w_end]) - base
        if used and used + n > budget:
            out.append((piece_start, last_end, used))
            piece_start, used = w_start, 0
        used += n
        last_end = w_end
    out.append((piece_start, last_end, used))
    return out


def _fit_words(
    text: str, words: list[tuple[int, int]], count_tokens: CountTokens, base: int, budget: int
) -> list[tuple[int, int]]:
    """Cut any single word over the budget (a URL, a run of symbols) into character slices."""
    out: list[tuple[int, int]] = []
    for w_start, w_end in words:
        n = count_tokens(text[w_start:w_end]) - base
        if n <= budget:
            out.append((w_start, w_end))
            continue
        step = max(1, (w_end - w_start) * budget // (2 * n))
        out.extend((a, min(a + step, w_end)) for a in range(w_start, w_end, step))
    return out
