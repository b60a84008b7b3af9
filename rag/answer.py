"""Answers with verified citations: retrieve, decide whether to refuse, generate, check.

Every answer goes through the same checks whoever wrote it: reasoning is removed and
citation variants become [n] (`rag.reply`), [n] markers that point to no passage shown are
removed (and the answer flagged), each sentence is checked against the passages it cites,
and sentences that cite nothing or are not supported are reported.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence

from pydantic import BaseModel, Field

from .answerable import Decision, Stats, decide, quote_span
from .embed import Embedder
from .errors import LLMError
from .generate import Cutoff, Generator, Message
from .korean import passage_sentences, sentence_spans
from .output import snippet
from .records import Hit
from .reply import (
    LoopGuard,
    ReasoningFilter,
    is_refusal,
    normalize_markers,
    only_markers,
    strip_footnotes,
    strip_reasoning,
)
from .sanitize import escape_block
from .support import Evidence, JudgeFn, evidence_for, language
from .templates import render
from .translated import Translations

log = logging.getLogger(__name__)

REFUSALS = {
    "ko": "색인된 기사에는 이 질문에 대한 답이 없습니다.",
    "en": "The indexed articles do not contain the answer to this question.",
}
LANGUAGE_NAMES = {"ko": "Korean", "en": "English"}
MAX_SENTENCES = 4

_MARKER = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
# Markers before a full stop or comma, with the spaces around them: a claim reads "늘었다."
_BEFORE_STOP = re.compile(rf"\s*(?:{_MARKER.pattern}\s*)+(?=[.,!?;:…。])")
_HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")
# Prompt tokens are estimated from characters, on the high side so a prompt that is
# estimated to fit does: a Hangul syllable counts as one token, other text as one per three
# characters. Measured with llama-server's /tokenize (Qwen2.5): the seed articles take 0.9
# tokens a syllable, English about one per four characters, and 5- and 10-passage prompts
# are 2,132 and 3,952 tokens, estimated 2,399 and 4,500. Chat templates add a few tokens
# per message.
CHARS_PER_TOKEN = 3
TEMPLATE_TOKENS = 64
# Why an answer stopped early, for people.
STOPPED = {
    "length": "the model reached its token limit (max_tokens {max_tokens})",
    "content_filter": "the server's content filter stopped the answer",
    "loop": "the model started repeating itself; the repetition was cut",
}


class Citation(Hit):
    """A passage the answer cites as [n], and whether every sentence citing it is supported
    with its help (`verify`: a citation that adds nothing to the others is not verified)."""

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

    ``verified`` is true when the answer cites at least one passage, no marker was invalid
    or unreadable, every sentence cites a passage that supports it and no citation pads a
    sentence (a refusal is not verified: there is nothing to check). ``complete`` is false
    when the model's output was cut off; ``stop_reason`` says why (``length``,
    ``content_filter``, ``loop``, or an `LLMError` kind such as ``timeout`` or ``stream``).
    ``notes`` say, for people, what the checks changed or found.
    """

    question: str
    text: str
    citations: list[Citation] = Field(default_factory=list)
    passages: list[Hit] = Field(default_factory=list)
    refused: bool = False
    complete: bool = True
    stop_reason: str | None = None
    verified: bool = False
    invalid_markers: list[int] = Field(default_factory=list)
    claims: list[Claim] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
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

    Reasoning blocks are not passed on. A reply that starts repeating itself is cut there
    (``stop_reason="loop"``). If the model's stream breaks, iteration raises `LLMError` and
    `answer` holds what was received, marked ``complete=False``.
    """

    def __init__(self, pieces: Iterator[str], finish: Callable[[str, str | None], Answer]) -> None:
        self._pieces = pieces
        self._finish = finish
        self.answer: Answer | None = None
        #: Whether pieces already yielded were the model's reasoning, its block opened by
        #: the chat template (the answer itself is without it): a terminal shows it again.
        self.reasoning_shown = False

    def __iter__(self) -> Iterator[str]:
        received = ""
        stop: str | None = None
        reasoning = ReasoningFilter()
        guard = LoopGuard()
        try:
            for piece in self._pieces:
                if isinstance(piece, Cutoff):
                    stop = piece.reason
                    continue
                received += piece
                shown = reasoning.feed(piece)
                self.reasoning_shown = reasoning.shown_reasoning
                if shown:
                    yield shown
                cut = guard.cut(received)
                if cut is not None:
                    received, stop = received[:cut], "loop"
                    break
        except LLMError as e:
            self.answer = self._finish(received, e.kind)
            raise
        finally:
            close = getattr(self._pieces, "close", None)
            if close is not None:  # stops the model's stream when the loop was cut
                close()
        rest = reasoning.flush()
        if rest and stop != "loop":
            yield rest
        self.answer = self._finish(received, stop)

    def result(self) -> Answer:
        """Read the rest of the stream and return the checked answer."""
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer


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
    decision = decide(question, hits, stats, embedder.model_id, Translations.of(embedder))
    shown = list(hits)
    notes: list[str] = []

    def finish(text: str, stop: str | None) -> Answer:
        evidence = evidence_for(
            embedder, tuple(h.text for h in shown), tuple(h.byline for h in shown)
        ).with_judge(judge)
        silent_refusal = stop is None and generator.silence_refuses
        answer = verify(question, text, shown, evidence, lang, silence_refuses=silent_refusal)
        answer.complete, answer.stop_reason = stop is None, stop
        if stop in STOPPED:
            answer.notes.insert(0, STOPPED[stop].format(max_tokens=generator.max_tokens))
        answer.notes[:0] = notes
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
    shown = fit_passages(question, hits, lang, generator.context_tokens, generator.max_tokens)
    if len(shown) < len(hits):
        notes.append(
            f"{len(shown)} of {len(hits)} passages shown, to fit the model's context of "
            f"{generator.context_tokens} tokens"
        )

    def pieces() -> Iterator[str]:
        nonlocal shown
        stream = generator.stream(
            answer_messages(question, shown, lang), question=question, passages=shown
        )
        try:
            first = next(stream, None)
        except LLMError as e:
            if e.kind != "context" or not shown:
                raise
            # The estimate fell short for this server: one more try with half the text.
            shown = _halve(shown)
            log.warning("%s; retrying with %d passages", e, len(shown))
            notes.append(f"{len(shown)} of {len(hits)} passages shown: the server said {e}")
            stream = generator.stream(
                answer_messages(question, shown, lang), question=question, passages=shown
            )
            first = next(stream, None)
        if first is not None:
            yield first
            yield from stream

    return AnswerStream(pieces(), finish)


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` takes at most in a typical LLM tokenizer (see `CHARS_PER_TOKEN`)."""
    hangul = len(_HANGUL.findall(text))
    return hangul + -(-(len(text) - hangul) // CHARS_PER_TOKEN)


def fit_passages(
    question: str,
    hits: Sequence[Hit],
    lang: str,
    context_tokens: int | None,
    max_tokens: int | None = None,
) -> list[Hit]:
    """The first of ``hits`` whose prompt fits ``context_tokens`` with room for the
    answer; a first passage too long on its own is shortened to whole sentences.

    Raises:
        LLMError: Not even the prompt without passages fits (kind ``context``).
    """
    shown = list(hits)
    if context_tokens is None:
        return shown
    budget = context_tokens - (max_tokens or 0) - TEMPLATE_TOKENS

    def need(passages: list[Hit]) -> int:
        return sum(estimate_tokens(m["content"]) for m in answer_messages(question, passages, lang))

    if need([]) > budget:
        raise LLMError(
            "context",
            f"the prompt does not fit the model's context of {context_tokens} tokens with "
            f"{max_tokens} for the answer; raise --context-tokens or lower --max-tokens",
        )
    while len(shown) > 1 and need(shown) > budget:
        shown.pop()
    while shown and need(shown) > budget:
        shown = _halve(shown)
    return shown


def _halve(hits: list[Hit]) -> list[Hit]:
    """The first half of the passages, or of the one passage's sentences (possibly none)."""
    if len(hits) > 1:
        return hits[: len(hits) // 2]
    if not hits:
        return []
    spans = passage_sentences(hits[0].text)
    end = spans[len(spans) // 2 - 1][1] if len(spans) > 1 else len(hits[0].text) // 2
    if end <= 0:
        return []
    hit = hits[0]
    return [hit.model_copy(update={"text": hit.text[:end], "end": hit.start + end})]


def answer_messages(question: str, hits: Sequence[Hit], lang: str) -> list[Message]:
    """The chat prompt: rules as the system message, numbered passages and question as user."""
    blocks = []
    for n, h in enumerate(hits, 1):
        about = h.about
        head = f"[{n}] {h.title or h.doc_id}" + (f" ({about})" if about else "")
        # No passage, title or outlet may close the data block and speak as the user.
        # The passage's own reference markers ("…했다.[3]") would read as our citations.
        blocks.append(f"{escape_block(head)}\n{escape_block(strip_footnotes(h.text))}")
    system = render(
        "answer_system",
        language_name=LANGUAGE_NAMES[lang],
        max_sentences=MAX_SENTENCES,
        refusal=REFUSALS[lang],
    )
    user = render("answer_user", passages="\n\n".join(blocks), question=question)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def verify(
    question: str,
    text: str,
    hits: Sequence[Hit],
    evidence: Evidence,
    lang: str,
    silence_refuses: bool = True,
) -> Answer:
    """Check an answer's markers and claims against the passages it was given.

    An empty reply is a refusal when ``silence_refuses`` (the extractive answerer, which
    finished, says nothing when nothing answers); a model's empty reply (or one of only
    reasoning), a reply of citation markers alone, or one cut off before any text, is no
    answer: neither refused nor verified.
    """
    stripped, leftovers = normalize_markers(strip_reasoning(text).strip())
    refusal = is_refusal(stripped, list(REFUSALS.values()))
    if refusal or (not stripped and silence_refuses):
        return Answer(question=question, text=REFUSALS[lang], passages=list(hits), refused=True)
    if not stripped or only_markers(stripped):
        what = "only citation markers" if stripped else "no text"
        note = f"no answer: the model's reply holds {what}"
        return Answer(question=question, text="", passages=list(hits), notes=[note])
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
    padding = [(n, c) for c in claims for n in c.cited if _pads(evidence, c, n)]
    padded = {n for n, _ in padding}
    cited = sorted({n for c in claims for n in c.cited})
    citations = [
        _citation(
            n, hits[n - 1], all(c.supported for c in claims if n in c.cited) and n not in padded
        )
        for n in cited
    ]
    notes = [f"unreadable citation {x}" for x in leftovers]
    notes += [f"[{n}] adds nothing to the sentence: {snippet(c.sentence, 60)}" for n, c in padding]
    return Answer(
        question=question,
        text=cleaned,
        citations=citations,
        passages=list(hits),
        invalid_markers=invalid,
        claims=claims,
        verified=bool(citations)
        and not invalid
        and not leftovers
        and all(c.supported for c in claims)
        and not padding,
        notes=notes,
    )


def _pads(evidence: Evidence, claim: Claim, n: int) -> bool:
    """Whether [n] pads ``claim``'s citations: the other passages it cites support the
    sentence without it, and it does not support the sentence alone ("[1][5][3]" where [3]
    says it all). A sentence combining two passages needs both, and each is kept."""
    others = [m for m in claim.cited if m != n]
    return (
        claim.supported
        and bool(others)
        and not evidence.support(claim.sentence, [n])[0]
        and evidence.support(claim.sentence, others)[0]
    )


def split_claims(text: str) -> list[tuple[str, list[int]]]:
    """Sentences of an answer with the passage numbers each cites.

    A marker belongs to the sentence it ends, also when the sentence splitter put it at the
    start of the next one ("...했다. [1] 다음 문장"). Words the splitter left after a
    sentence's markers begin the next sentence: Kiwi reads the opening quote of "말했다. [5]
    '국민 메신저' 카카오톡에 …" as closing the sentence before.
    """
    claims: list[tuple[str, list[int]]] = []
    spans = sentence_spans(text)
    carried = ""
    for i, (a, b) in enumerate(spans):
        sentence = carried + text[a:b]
        carried = ""
        lead = re.match(r"^(\s*\[\d+\])+", sentence)
        if lead and claims:
            claims[-1][1].extend(int(n) for n in re.findall(r"\d+", lead.group(0)))
            sentence = sentence[lead.end() :]
        parts = _marked_parts(sentence)
        same_line = i + 1 < len(spans) and "\n" not in text[b : spans[i + 1][0]]
        if len(parts) > 1 and same_line and not _MARKER.search(parts[-1]):
            carried = parts.pop().lstrip() + " "
        for part in parts:
            cited = [int(n) for m in _MARKER.finditer(part) for n in m.group(1).split(",")]
            plain = " ".join(_MARKER.sub(" ", _BEFORE_STOP.sub("", part)).split())
            if plain:
                claims.append((plain, list(dict.fromkeys(cited))))
            elif cited and claims:
                claims[-1][1].extend(cited)
    return [(s, list(dict.fromkeys(c))) for s, c in claims]


def _marked_parts(sentence: str) -> list[str]:
    """``sentence`` cut after each run of markers that more text follows: "제목 [2] 본문 [3]"
    is two claims, a quoted heading having no full stop for the sentence splitter to see. A
    marker before a comma or a connective clause ("했고 [1], …") does not cut."""
    parts, start = [], 0
    for m in re.finditer(rf"(?:\s*{_MARKER.pattern})+", sentence):
        rest = sentence[m.end() :].lstrip()
        if re.search(r"\w", rest) and rest[0] not in ",;:·).!?" and m.end() > start:
            parts.append(sentence[start : m.end()])
            start = m.end()
    parts.append(sentence[start:])
    return [p for p in parts if p.strip()]


def _citation(n: int, hit: Hit, verified: bool) -> Citation:
    return Citation(n=n, verified=verified, **hit.model_dump())
