"""The offline answerer: the passages' own sentences that best answer the question, cited.

It never writes a word of its own: every sentence of the answer is copied from a passage
and followed by that passage's [n] marker.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np

from ..answerable import tagged
from ..embed import Embedder
from ..generate import Generator, Message
from ..kinds import answer_kind, holds_kind
from ..records import Hit
from ..support import Evidence, Sentence, evidence_for, key_terms

# Sentence score = cosine(question, sentence) + LEXICAL_WEIGHT * share of the question's
# content words in the sentence. Sentences within MARGIN of the best one join the answer.
LEXICAL_WEIGHT = 0.15
MARGIN = 0.03
# A question asking for a kind of answer (누구/who: a name, 언제/when: a date, ...) is
# answered by the best sentence holding one, if it scores within KIND_MARGIN of the best
# sentence overall; it opens the answer, and nothing else is added.
KIND_MARGIN = 0.05
# For a "why" question, sentences that state a cause get a bonus of CAUSE_BONUS.
_WHY = re.compile(r"왜|이유|원인|까닭|\bwhy\b|\breasons?\b|\bcauses?\b", re.IGNORECASE)
_CAUSE = re.compile(r"때문|이유|원인|탓|이어졌|이어진|이어지|으로 인해|로 인해|따라서")
CAUSE_BONUS = 0.03
# A sentence opening like this leans on the one before it ("이 과정에서 ..." = in the course
# of what the previous sentence said), so that one joins the answer as its context.
_LEANS_BACK = re.compile(
    r"^(이 과정에서|이에 따라|이 때문에|이로 인해|그 결과|이러한|이런|이같은|이 같은|그러나|하지만|"
    r"따라서)[\s,]"
)


class ExtractiveGenerator(Generator):
    """Selects up to ``max_sentences`` sentences by embedding similarity and word overlap."""

    name = "extractive"
    can_condense = False

    def __init__(self, embedder: Embedder, max_sentences: int = 3) -> None:
        self.embedder = embedder
        self.max_sentences = max_sentences

    def stream(
        self, messages: list[Message], *, question: str = "", passages: Sequence[Hit] = ()
    ) -> Iterator[str]:
        passages_text = tuple(p.text for p in passages)
        chosen = self.select(question, evidence_for(self.embedder, passages_text))
        yield " ".join(f"{s.text} [{s.n}]" for s in chosen)

    def select(self, question: str, evidence: Evidence) -> list[Sentence]:
        """The best sentences, the one holding the answer first."""
        if not evidence.sentences or not question.strip():
            return []
        [terms] = key_terms([question])
        scores = evidence.similarity(question) + LEXICAL_WEIGHT * evidence.overlap(terms)
        if _WHY.search(question):
            scores += CAUSE_BONUS * np.array(
                [bool(_CAUSE.search(s.text)) for s in evidence.sentences]
            )
        scores[[_fragment(s.text) for s in evidence.sentences]] = -np.inf
        order = [int(i) for i in np.argsort(-scores, kind="stable")]
        sentences = evidence.sentences
        if not np.isfinite(scores[order[0]]):
            return []
        answers = self._answers_of_kind(question, sentences, scores, order)
        if answers:
            return [sentences[i] for i in answers]
        best = scores[order[0]]
        # Overlapping chunks repeat sentences: the best distinct ones are picked.
        picked: list[int] = []
        for i in order:
            if len(picked) == self.max_sentences or scores[i] < best - MARGIN:
                break
            if all(sentences[j].text != sentences[i].text for j in picked):
                picked.append(i)
        # Best first; a sentence leaning on the one before it keeps that one just before it.
        chosen: list[Sentence] = []
        for i in picked:
            rows = _with_context(sentences, i) if _LEANS_BACK.match(sentences[i].text) else [i]
            for r in rows:
                if all(c.text != sentences[r].text for c in chosen):
                    chosen.append(sentences[r])
        return chosen

    def _answers_of_kind(
        self, question: str, sentences: list[Sentence], scores: np.ndarray, order: list[int]
    ) -> list[int]:
        """The best sentence holding the kind of answer asked for, if one scores close to
        the best, and any other holding one within MARGIN of it (two close candidates are
        both shown, best first); empty when the question asks for no particular kind."""
        kind = answer_kind(question)
        if kind == "other":
            return []
        close = [i for i in order if scores[i] >= scores[order[0]] - KIND_MARGIN]
        plain = "".join(question.split())
        analyzed = tagged([sentences[i].text for i in close])
        holding = [i for i, t in zip(close, analyzed, strict=True) if holds_kind(kind, t, plain)]
        picked: list[int] = []
        for i in holding:
            if len(picked) == self.max_sentences or scores[i] < scores[holding[0]] - MARGIN:
                break
            if all(sentences[j].text != sentences[i].text for j in picked):
                picked.append(i)
        return picked


def _with_context(sentences: list[Sentence], i: int) -> list[int]:
    """Row ``i`` and the sentence before it, from a passage that holds both (chunks overlap,
    so a sentence that opens one passage may sit inside another)."""
    for j, s in enumerate(sentences):
        if s.text == sentences[i].text and j > 0 and sentences[j - 1].n == s.n:
            return [j - 1, j]
    return [i]


# A sentence ends with punctuation, a closing quote or bracket, or a final ending (…다, …요).
_SENTENCE_END = re.compile(r"(?:[.!?…。\"'”’」』)\]]|[다요까죠음함임])\s*$")


def _fragment(text: str) -> bool:
    """A heading, caption or byline ("사진설명", "고민서 기자", "AI사업은 카카오브레인 중심"):
    short, or a short line with no sentence ending. Never an answer on its own."""
    return len(text) < 15 or (len(text) < 60 and not _SENTENCE_END.search(text))
