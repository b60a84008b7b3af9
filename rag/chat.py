"""A conversation over an index: follow-up questions are made standalone before retrieval.

"그럼 새 대표는 누구야?" means nothing to a retriever; after "카카오엔터프라이즈는 왜
구조조정되었나?" it means "카카오엔터프라이즈 새 대표는 누구야?". With an LLM the rewrite is
the model's (prompts/condense.txt); offline, the previous question's names are carried over.
A model's rewrite is used only if it still looks like the user's question (`rewrite_ok`):
small models answer the question instead, or explain; then the offline rewrite is used.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .kinds import answer_kind, person_names
from .korean import entity_phrases, tagged, with_particle
from .reply import strip_reasoning
from .support import language
from .templates import render

if TYPE_CHECKING:
    from .answer import Answer, AnswerStream
    from .generate import Generator
    from .index import Index

# Openings that mark a question as a follow-up even when it names something itself.
_FOLLOW_UP = re.compile(
    r"^\s*(그럼|그러면|그렇다면|그리고|그래서|그건|그게|또|그 |and\b|so\b|then\b|what about\b|"
    r"how about\b)",
    re.IGNORECASE,
)
# Of those, the connectives that only say "next question": left out of the rewrite.
_CONNECTIVE = re.compile(r"^\s*(?:그럼|그러면|그렇다면|그리고|그래서|and|so|then)\b[\s,]*", re.I)
# A follow-up that only names something else ("그럼 플리토는?", "What about Kakao Brain?")
# asks the previous question about it.
_ONLY_A_NAME = re.compile(
    r"^\s*(?i:(?:what|how) about\s+|and\s+)?"
    r"(?P<name>[^\s?？]+?|[A-Z][\w&.'-]*(?:\s+[A-Z][\w&.'-]*)*)"
    r"(?:은|는|이|가|도)?(?:요)?\s*[?？]\s*$"
)
HISTORY_TURNS = 4
log = logging.getLogger(__name__)

# Question words by meaning: a rewrite must keep the kind of question the user asked
# ("누구야?" stays a who-question, whether it says 누구 or 누가).
_ASKS = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"누구|누가",
        r"무엇|뭐|무슨|\bwhat\b|\bwhich\b",
        r"언제|\bwhen\b",
        r"어디|\bwhere\b",
        r"얼마|몇|\bhow (much|many)\b",
        r"왜|이유|\bwhy\b",
        r"어떻게|어떤|어느|\bhow\b",
        r"\bwho(m|se)?\b",
    )
]
# Korean sentence endings that ask; "다." ends a statement.
_ASKING_END = re.compile(r"(\?|？|까|나|니|냐|가|요|죠|지|는지|은지)\s*$")
_LABEL = re.compile(r"^(standalone question|rewritten question|question|질문|q)\s*[:：]\s*", re.I)


@dataclass
class Turn:
    question: str
    standalone: str
    answer: Answer


@dataclass
class ChatSession:
    """Keeps the conversation; `ask_stream` answers one more question in its context."""

    index: Index
    generator: Generator
    k: int = 5
    since: dt.date | str | None = None
    until: dt.date | str | None = None
    source: str | None = None
    turns: list[Turn] = field(default_factory=list)

    def reset(self) -> None:
        """Forget the conversation."""
        self.turns.clear()

    @property
    def last(self) -> Answer | None:
        return self.turns[-1].answer if self.turns else None

    def condense(self, question: str) -> str:
        """``question`` rewritten to stand alone, given the turns so far."""
        if not self.turns:
            return question
        if self.generator.can_condense:
            history = "\n".join(
                f"User: {t.standalone}\nAssistant: {t.answer.text}"
                for t in self.turns[-HISTORY_TURNS:]
            )
            prompt = render("condense", history=history, question=question)
            rewritten = self.generator.generate([{"role": "user", "content": prompt}])
            names = [
                name
                for t in self.turns[-HISTORY_TURNS:]
                for name in entity_phrases(f"{t.standalone}\n{t.answer.text}")
            ]
            checked = rewrite_ok(rewritten, question, names)
            if checked is not None:
                return checked
            log.info("the model's rewrite is not a question, using the offline one: %r", rewritten)
        last = self.turns[-1]
        return carry_over(
            last.standalone, question, "" if last.answer.refused else last.answer.text
        )

    def ask_stream(self, question: str) -> tuple[str, AnswerStream]:
        """The standalone question and a stream of its answer; call `record` when done."""
        standalone = self.condense(question)
        stream = self.index.ask_stream(
            standalone,
            answerer=self.generator,
            k=self.k,
            since=self.since,
            until=self.until,
            source=self.source,
        )
        return standalone, stream

    def record(self, question: str, standalone: str, answer: Answer) -> None:
        self.turns.append(Turn(question, standalone, answer))


def rewrite_ok(rewritten: str, question: str, names: list[str]) -> str | None:
    """The model's standalone ``rewritten`` form of ``question``, tidied, if it is one.

    It must be one line in the question's language, no longer than the question plus the
    conversation's ``names`` (and some slack for particles), cite nothing, keep the kind
    of question asked (who, when, how much, ...), and ask when the question asked.
    """
    text = strip_reasoning(rewritten).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        return None
    text = _LABEL.sub("", lines[0].strip()).strip("\"'“”‘’「」`* ")
    unique = " ".join(dict.fromkeys(names))
    limit = len(question) + len(unique) + max(20, len(question) // 2)
    if not text or len(text) > limit or re.search(r"\[\d+\]", text):
        return None
    if language(text) != language(question):
        return None
    if any(ask.search(question) and not ask.search(text) for ask in _ASKS):
        return None
    if _ASKING_END.search(question.strip()) and not _ASKING_END.search(text):
        return None
    return text


def _name_span(text: str, name: str) -> tuple[int, int]:
    """Where ``name`` is written in ``text``, with the nouns written onto it: 카카오 in
    카카오브레인은 spans 카카오브레인 (Kiwi reads 브레인 as a common noun)."""
    at = text.index(name)
    end = at + len(name)
    for t in tagged([text])[0]:
        if t.start == end and t.tag in ("NNP", "NNG", "SL", "SN", "XSN"):
            end = t.end
    return at, end


def carry_over(previous: str, question: str, answer: str = "") -> str:
    """Prefix a follow-up ``question`` with the names in the ``previous`` question.

    A Korean follow-up that says 그 or 그녀 means a person: the one the ``answer`` to a
    previous who-question named, else the one the previous question named. "그의 경력은?"
    after "카카오엔터프라이즈의 새 대표는 누구야?", answered "이경진 …", is "이경진의 경력은?".

    A question is a follow-up when it names nothing itself or opens like one ("그럼",
    "and"); names it already contains are not repeated, and an opening connective ("그럼",
    "and") gives way to them: "그럼 새 대표는 누구야?" -> "카카오엔터프라이즈 새 대표는 누구야?".
    A follow-up that only names something else asks the previous question about it: after
    "카카오엔터프라이즈의 새 대표는 누구야?", "그럼 플리토는?" -> "플리토의 새 대표는 누구야?".
    """
    person = _person_meant(previous, answer)
    pronoun = next((t for t in tagged([question])[0] if t.form in _HE and t.tag == "NP"), None)
    if person and pronoun is not None:
        after = with_particle(person, question[pronoun.end :])
        return question[: pronoun.start] + person + after
    rest = _CONNECTIVE.sub("", question, count=1) or question
    carried = [p for p in entity_phrases(previous) if p not in question]
    only = _ONLY_A_NAME.match(rest)
    if carried and only and entity_phrases(only["name"]):
        # The previous question, asked of the name instead of its own (the longest).
        at, end = _name_span(previous, max(carried, key=len))
        return previous[:at] + only["name"] + with_particle(only["name"], previous[end:])
    if entity_phrases(question) and not _FOLLOW_UP.match(question):
        return question
    return " ".join([*carried, rest]) if carried else question


_HE = frozenset({"그", "그녀"})


def _person_meant(previous: str, answer: str) -> str:
    """Whom a follow-up's 그 or 그녀 means: the person the lead sentence of the answer to a
    who-question named (not one the question named), else the person the previous question
    named ("" if neither names one)."""
    if answer and answer_kind(previous) == "person":  # the answer's lead sentence names them
        lead = re.split(r"\[\d+\]", answer, maxsplit=1)[0]
        named = [n for n in person_names(lead) if n not in previous]
        if named:
            return named[0]
    return next(iter(person_names(previous)), "")
