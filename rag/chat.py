"""A conversation over an index: follow-up questions are made standalone before retrieval.

"그럼 새 대표는 누구야?" means nothing to a retriever; after "카카오엔터프라이즈는 왜
구조조정되었나?" it means "카카오엔터프라이즈 새 대표는 누구야?". With an LLM the rewrite is
the model's (prompts/condense.txt); offline, the previous question's names are carried over.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .korean import entity_phrases
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
HISTORY_TURNS = 4


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
            rewritten = self.generator.generate([{"role": "user", "content": prompt}]).strip()
            return rewritten.splitlines()[0].strip() if rewritten else question
        return carry_over(self.turns[-1].standalone, question)

    def ask_stream(self, question: str) -> tuple[str, AnswerStream]:
        """The standalone question and a stream of its answer; call `record` when done."""
        from .answer import ask_stream

        standalone = self.condense(question)
        stream = ask_stream(
            self.index,
            standalone,
            self.generator,
            k=self.k,
            since=self.since,
            until=self.until,
            source=self.source,
        )
        return standalone, stream

    def record(self, question: str, standalone: str, answer: Answer) -> None:
        self.turns.append(Turn(question, standalone, answer))


def carry_over(previous: str, question: str) -> str:
    """Prefix a follow-up ``question`` with the names in the ``previous`` question.

    A question is a follow-up when it names nothing itself or opens like one ("그럼",
    "and"); names it already contains are not repeated.
    """
    own = entity_phrases(question)
    if own and not _FOLLOW_UP.match(question):
        return question
    carried = [p for p in entity_phrases(previous) if p not in question]
    return " ".join([*carried, question]) if carried else question
