"""Answers with verified citations: retrieve, decide whether to refuse, generate, check.

Every answer goes through the same checks whoever wrote it: [n] markers that point to no
passage shown are removed (and the answer flagged), each sentence is checked against the
passages it cites, and sentences that cite nothing or are not supported are reported.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from .answerable import Decision, Stats, decide, quote_span
from .embed import Embedder
from .errors import LLMError
from .generate import Generator, Message
from .korean import sentence_spans
from .records import Hit
from .sanitize import escape_block
from .support import Evidence, JudgeFn, evidence_for, language
from .templates import render

if TYPE_CHECKING:
    from .index import Index

REFUSALS = {
    "ko": "색인된 기사에는 이 질문에 대한 답이 없습니다.",
    "en": "The indexed articles do not contain the answer to this question.",
}
LANGUAGE_NAMES = {"ko": "Korean", "en": "English"}
MAX_SENTENCES = 4

_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


class Citation(Hit):
    """A passage the answer cites as [n], and whether every sentence citing it is supported."""

    n: int
    verified: bool
    #: Character span in ``text`` of the sentence the answer quotes from this passage.
    quote: tuple[int, int] | None = None


class Claim(BaseModel):
    """One sentence of the answer, the passages it cites and the support check's verdict."""

    sentence: str
    cited: list[int]
    supported: bool
    score: float


class Answer(BaseModel):
    """An answer, its citations and what the checks found.

    ``verified`` is true when no marker was invalid and every sentence cites a passage that
    supports it. ``complete`` is false when the model's output was cut off.
    """

    question: str
    text: str
    citations: list[Citation] = Field(default_factory=list)
    passages: list[Hit] = Field(default_factory=list)
    refused: bool = False
    complete: bool = True
    verified: bool = True
    invalid_markers: list[int] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)
    answerer: str = ""
    timing: dict[str, float] = Field(default_factory=dict)
    #: Why the question was answered or refused before any answerer ran (`rag.answerable`).
    answerability: Decision | None = None

    @property
    def unsupported(self) -> list[Claim]:
        """Sentences that cite nothing or whose citations do not support them."""
        return [c for c in self.claims if not c.supported]


class AnswerStream:
    """Iterate to receive the answer's text as it is generated; then read `answer`.

    If the model's stream breaks, iteration raises `LLMError` and `answer` holds what was
    received, marked ``complete=False``.
    """

    def __init__(self, pieces: Iterator[str], finish: Callable[[str, bool], Answer]) -> None:
        self._pieces = pieces
        self._finish = finish
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        received: list[str] = []
        try:
            for piece in self._pieces:
                received.append(piece)
                yield piece
        except LLMError:
            self.answer = self._finish("".join(received), False)
            raise
        self.answer = self._finish("".join(received), True)

    def result(self) -> Answer:
        """Read the rest of the stream and return the checked answer."""
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer


def ask_stream(
    index: Index, question: str, generator: Generator, judge: JudgeFn | None = None, **search: Any
) -> AnswerStream:
    """Retrieve for ``question`` (``search`` goes to `Index.search`) and stream the answer."""
    started = time.perf_counter()
    hits = index.search(question, **search)
    seconds = time.perf_counter() - started
    return answer_stream(
        question, hits, generator, index.embedder, seconds, index.document_frequencies, judge
    )


def answer_stream(
    question: str,
    hits: Sequence[Hit],
    generator: Generator,
    embedder: Embedder,
    retrieve_seconds: float = 0.0,
    stats: Stats | None = None,
    judge: JudgeFn | None = None,
) -> AnswerStream:
    """Answer ``question`` from passages already retrieved (numbered in order); ``stats``
    weighs the question's words for the refusal decision (`Index.document_frequencies`), and
    ``judge`` (`rag.judge.Judge`) settles the claims the support rules cannot."""
    started = time.perf_counter()
    lang = language(question)
    decision = decide(question, hits, stats)

    def finish(text: str, complete: bool) -> Answer:
        evidence = evidence_for(embedder, tuple(h.text for h in hits)).with_judge(judge)
        answer = verify(question, text, hits, evidence, lang)
        answer.complete = complete
        answer.answerer = generator.name
        answer.answerability = decision
        for c in answer.citations:
            c.quote = quote_span(c.text, [x.sentence for x in answer.claims if c.n in x.cited])
        spent = time.perf_counter() - started
        answer.timing = {
            "retrieve": round(retrieve_seconds, 4),
            "answer": round(spent, 4),
            "total": round(retrieve_seconds + spent, 4),
        }
        return answer

    if not decision.answerable:
        return AnswerStream(iter([REFUSALS[lang]]), finish)
    messages = answer_messages(question, hits, lang)
    pieces = generator.stream(messages, question=question, passages=hits)
    return AnswerStream(pieces, finish)


def answer_messages(question: str, hits: Sequence[Hit], lang: str) -> list[Message]:
    """The chat prompt: rules as the system message, numbered passages and question as user."""
    blocks = []
    for n, h in enumerate(hits, 1):
        meta = ", ".join(x for x in (h.date.isoformat() if h.date else None, h.source) if x)
        head = f"[{n}] {h.title or h.doc_id}" + (f" ({meta})" if meta else "")
        # No passage, title or outlet may close the data block and speak as the user.
        blocks.append(f"{escape_block(head)}\n{escape_block(h.text)}")
    system = render(
        "answer_system",
        language_name=LANGUAGE_NAMES[lang],
        max_sentences=MAX_SENTENCES,
        refusal=REFUSALS[lang],
    )
    user = render("answer_user", passages="\n\n".join(blocks), question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def verify(question: str, text: str, hits: Sequence[Hit], evidence: Evidence, lang: str) -> Answer:
    """Check an answer's markers and claims against the passages it was given."""
    stripped = text.strip()
    if not stripped or _is_refusal(stripped):
        return Answer(question=question, text=REFUSALS[lang], passages=list(hits), refused=True)
    invalid: list[int] = []

    def keep_valid(m: re.Match[str]) -> str:
        numbers = [int(x) for x in m.group(1).split(",")]
        valid = [n for n in numbers if 1 <= n <= len(hits)]
        invalid.extend(n for n in numbers if n not in valid)
        return "".join(f"[{n}]" for n in valid)

    cleaned = _MARKER.sub(keep_valid, stripped)
    claims = [
        Claim(sentence=s, cited=c, supported=ok, score=round(score, 3))
        for s, c in split_claims(cleaned)
        for ok, score in [evidence.support(s, c) if c else (False, 0.0)]
    ]
    cited = sorted({n for c in claims for n in c.cited})
    citations = [
        _citation(n, hits[n - 1], all(c.supported for c in claims if n in c.cited)) for n in cited
    ]
    return Answer(
        question=question,
        text=cleaned,
        citations=citations,
        passages=list(hits),
        invalid_markers=invalid,
        claims=claims,
        verified=not invalid and all(c.supported for c in claims),
    )


def split_claims(text: str) -> list[tuple[str, list[int]]]:
    """Sentences of an answer with the passage numbers each cites.

    A marker belongs to the sentence it ends, also when the sentence splitter put it at the
    start of the next one ("...했다. [1] 다음 문장").
    """
    claims: list[tuple[str, list[int]]] = []
    for a, b in sentence_spans(text):
        sentence = text[a:b]
        lead = re.match(r"^(\s*\[\d+\])+", sentence)
        if lead and claims:
            claims[-1][1].extend(int(n) for n in re.findall(r"\d+", lead.group(0)))
            sentence = sentence[lead.end() :]
        cited = [int(n) for m in _MARKER.finditer(sentence) for n in m.group(1).split(",")]
        plain = " ".join(_MARKER.sub(" ", sentence).split())
        if plain:
            claims.append((plain, list(dict.fromkeys(cited))))
        elif cited and claims:
            claims[-1][1].extend(cited)
    return [(s, list(dict.fromkeys(c))) for s, c in claims]


def _is_refusal(text: str) -> bool:
    plain = _MARKER.sub("", text).strip()
    return any(plain.startswith(r.rstrip(".")) for r in REFUSALS.values())


def _citation(n: int, hit: Hit, verified: bool) -> Citation:
    return Citation(n=n, verified=verified, **hit.model_dump())
