"""Scoring against gold questions: retrieval, answers, citations, refusals and latency.

Retrieval uses binary relevance at the document level: hits are ranked chunks and a
document counts once, at the rank of its best chunk, so an article split into many chunks
neither helps nor hurts its own score. Answers are compared on Kiwi morphemes (see
`answer_tokens`) so that a particle or an ending does not count as a wrong word. Every
metric is a mean or a share over a stated set of questions (``EvalResult.denominators``);
when that set is empty the metric is ``None``, never NaN.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, computed_field

from . import config
from .errors import LLMError

# The gold set's model and reader, importable from here as before.
from .gold import GoldItem as GoldItem
from .gold import gold_digest as gold_digest
from .gold import load_gold as load_gold
from .metrics import (
    doc_ranking,
    exact_match,
    hit_at,
    leads_with_fact,
    missing_facts,
    mrr_at,
    ndcg_at,
    recall_at,
    token_f1,
)

if TYPE_CHECKING:
    from .answer import Answer
    from .generate import Generator
    from .index import Index

CUTOFFS = (1, 3, 5, 10)
#: Chunks retrieved to rank documents for the retrieval metrics (more than 10 chunks can
#: be needed to see 10 distinct documents).
RANKING_DEPTH = 50
LATENCY_STAGES = ("retrieve", "answer", "total")
#: Consecutive failed answers after which the model is taken to be down and the remaining
#: questions are not asked (each failure may have waited for timeouts and retries).
MAX_ERRORS_IN_A_ROW = 3


class CitedPassage(BaseModel):
    """A citation as scored: passage number, its document and whether it was verified."""

    n: int
    doc_id: str
    verified: bool


class QuestionResult(BaseModel):
    """How one gold question was answered and scored (``None``: not scored, see the
    metric's definition)."""

    id: str
    question: str
    answerable: bool
    answer: str
    refused: bool
    gold_docs: list[str]
    ranking: list[str]
    citations: list[CitedPassage]
    invalid_markers: int
    em: float | None
    f1: float | None
    facts: float | None
    missing_facts: list[str]
    unsupported: int = 0
    passed: bool
    timing: dict[str, float]
    #: Whether the answer's first sentence holds a gold fact (answered answerable questions
    #: whose answer did not fail).
    answer_first: bool | None = None
    error: str | None = None
    #: False when the answer was cut short (the token limit, the content filter, a
    #: repetition loop) or failed; ``stop_reason`` says why (`Answer.stop_reason`, or the
    #: `LLMError` kind of a failed answer).
    complete: bool = True
    stop_reason: str | None = None

    @property
    def cut_short(self) -> bool:
        """Whether the answer was cut short without an error (the `incomplete` metric)."""
        return not self.complete and self.error is None


class EvalResult(BaseModel):
    """Metrics over a gold set, how many questions each is computed on, and every question.

    ``questions`` is the number of gold questions and ``scored`` the number in ``items``:
    fewer when the run was ``interrupted`` (Ctrl-C), and the metrics are then over those.
    """

    gold: str = ""
    gold_digest: str
    questions: int
    config: dict[str, Any]
    metrics: dict[str, float | None]
    denominators: dict[str, int]
    items: list[QuestionResult]
    seconds: float
    interrupted: bool = False

    @computed_field  # type: ignore[prop-decorator]
    @property
    def scored(self) -> int:
        """The questions scored (in ``items``)."""
        return len(self.items)


class EvalInterrupted(KeyboardInterrupt):
    """Ctrl-C during `evaluate`: ``result`` holds the questions scored before it, marked
    ``interrupted``."""

    def __init__(self, result: EvalResult) -> None:
        self.result = result
        super().__init__(f"interrupted after {result.scored} of {result.questions} questions")


# -- scoring -----------------------------------------------------------------------------


def score(
    item: GoldItem,
    answer_text: str,
    refused: bool,
    citations: Sequence[CitedPassage] = (),
    ranking: Sequence[str] = (),
    invalid_markers: int = 0,
    timing: dict[str, float] | None = None,
    unsupported: int = 0,
    error: str | None = None,
    complete: bool = True,
    stop_reason: str | None = None,
) -> QuestionResult:
    """Score one answer against its gold item.

    A refusal is scored, never skipped: on an unanswerable question it counts as EM, F1 and
    fact coverage 1; on an answerable one as 0. An answerable question passes when it is
    answered, covers every fact and the answer is verified: at least one citation, every
    citation verified and no ``unsupported`` sentence. An unanswerable one passes when it
    is refused. A question whose answer failed with an ``error``, or was cut short (not
    ``complete``), never passes; a failed answer is not scored for ``answer_first``.
    """
    missing: list[str] = []
    em: float | None
    f1: float | None
    facts: float | None
    if not item.answerable:
        em = f1 = facts = 1.0 if refused else 0.0
        passed = refused
    else:
        if refused:
            em = f1 = 0.0 if item.answer else None
            missing = [f[0] for f in item.facts if f]
        else:
            em = exact_match(answer_text, item.answer) if item.answer else None
            f1 = token_f1(answer_text, item.answer) if item.answer else None
            missing = missing_facts(answer_text, item.facts)
        facts = 1 - len(missing) / len(item.facts) if item.facts else None
        verified = bool(citations) and all(c.verified for c in citations) and not unsupported
        passed = not refused and not missing and verified
    return QuestionResult(
        id=item.id,
        question=item.question,
        answerable=item.answerable,
        answer=answer_text,
        refused=refused,
        gold_docs=item.docs,
        ranking=list(ranking),
        citations=list(citations),
        invalid_markers=invalid_markers,
        em=em,
        f1=f1,
        facts=facts,
        missing_facts=missing,
        unsupported=unsupported,
        passed=passed and error is None and complete,
        timing=timing or {},
        answer_first=None
        if refused or not item.answerable or not item.facts or error is not None
        else leads_with_fact(answer_text, item.facts),
        error=error,
        complete=complete and error is None,
        stop_reason=stop_reason,
    )


def _percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def aggregate(items: Sequence[QuestionResult]) -> tuple[dict[str, float | None], dict[str, int]]:
    """The metrics over scored questions and the number of questions (or citations) each
    is computed on."""
    metrics: dict[str, float | None] = {}
    sizes: dict[str, int] = {}

    def put(name: str, values: Sequence[float]) -> None:
        metrics[name] = sum(values) / len(values) if values else None
        sizes[name] = len(values)

    ranked = [(i.ranking, set(i.gold_docs)) for i in items if i.answerable and i.gold_docs]
    for k in CUTOFFS:
        put(f"hit@{k}", [hit_at(r, g, k) for r, g in ranked])
    for k in CUTOFFS:
        put(f"recall@{k}", [recall_at(r, g, k) for r, g in ranked])
    put("mrr@10", [mrr_at(r, g, 10) for r, g in ranked])
    put("ndcg@10", [ndcg_at(r, g, 10) for r, g in ranked])
    put("exact_match", [i.em for i in items if i.em is not None])
    put("f1", [i.f1 for i in items if i.f1 is not None])
    put("fact_coverage", [i.facts for i in items if i.facts is not None])
    cited = [c.verified for i in items if not i.refused for c in i.citations]
    put("citation_precision", [float(v) for v in cited])
    cited_docs = [(set(i.gold_docs), {c.doc_id for c in i.citations}) for i in items]
    put("citation_recall", [float(d in cited) for gold, cited in cited_docs for d in gold])
    metrics["invalid_markers"] = float(sum(i.invalid_markers for i in items))
    sizes["invalid_markers"] = len(items)
    metrics["errors"] = float(sum(i.error is not None for i in items))
    sizes["errors"] = len(items)
    metrics["incomplete"] = float(sum(i.cut_short for i in items))
    sizes["incomplete"] = len(items)
    put("refusal_accuracy", [float(i.refused) for i in items if not i.answerable])
    put("false_refusal_rate", [float(i.refused) for i in items if i.answerable])
    put("pass_rate", [float(i.passed) for i in items])
    put("answer_first", [float(i.answer_first) for i in items if i.answer_first is not None])
    for stage in LATENCY_STAGES:
        times = [i.timing[stage] for i in items if stage in i.timing]
        for name, q in (("p50", 0.5), ("p95", 0.95)):
            metrics[f"latency_{stage}_{name}"] = _percentile(times, q)
            sizes[f"latency_{stage}_{name}"] = len(times)
    return metrics, sizes


def _scored(
    item: GoldItem,
    answer: Answer | None,
    ranking: list[str],
    error: str | None,
    kind: str | None = None,
) -> QuestionResult:
    """`score` for an `Answer` (``None``: the answer failed before anything was received);
    ``kind`` is the failure's `LLMError` kind."""
    if answer is None:
        return score(item, "", False, ranking=ranking, error=error, stop_reason=kind)
    cited = answer.citations
    return score(
        item,
        answer.text,
        answer.refused,
        ranking=ranking,
        citations=[CitedPassage(n=c.n, doc_id=c.doc_id, verified=c.verified) for c in cited],
        invalid_markers=len(answer.invalid_markers),
        timing=answer.timing,
        unsupported=len(answer.unsupported),
        error=error,
        complete=answer.complete,
        stop_reason=answer.stop_reason or kind,
    )


def evaluate(
    index: Index,
    gold_items: Sequence[GoldItem | dict[str, Any]],
    k: int = 5,
    answerer: str | Generator | None = None,
    fusion: str = config.DEFAULT_FUSION,
    bm25_weight: float = config.DEFAULT_BM25_WEIGHT,
    progress: Callable[[str, int, int], None] | None = None,
    **llm_options: Any,
) -> EvalResult:
    """Ask every gold question and score retrieval, answers, citations and refusals.

    Args:
        index: The index to evaluate.
        gold_items: `GoldItem`s or dicts with the gold JSONL schema.
        k: Passages retrieved and shown to the answerer.
        answerer: As for `Index.ask`: ``extractive``, ``openai``, a `Generator` or ``None``.
        fusion: Retrieval fusion, used for the retrieval metrics and for answering.
        bm25_weight: BM25's weight in the ``convex`` fusion.
        progress: Called as ``progress("questions", done, total)``.
        **llm_options: For ``openai``: ``model``, ``base_url``, ``api_key``, ``timeout``.

    Returns:
        The metrics, their denominators and each question's scores. A question whose answer
        failed (`LLMError`) is recorded with its ``error`` and fails, and the run goes on;
        after `MAX_ERRORS_IN_A_ROW` failures in a row the rest are recorded as not asked.

    Raises:
        InvalidOption: A bad ``k``, ``fusion`` or ``bm25_weight``.
        EvalInterrupted: Ctrl-C; no more questions are asked and its ``result`` holds the
            questions scored before it (the one being answered is left out).
    """
    from .answer import answer_stream

    items = [GoldItem.model_validate(i) if isinstance(i, dict) else i for i in gold_items]
    generator = index.answerer(answerer, llm_options)
    results: list[QuestionResult] = []
    started = time.perf_counter()
    interrupted = False
    try:
        # Each question is searched once, deep enough for the retrieval metrics, and the
        # answerer is shown the first k of those hits: the same as searching k, since fusion
        # always ranks the same candidates.
        # The first search builds lookup tables: keep that one-time cost out of the latencies.
        index.search(items[0].question if items else "", k=1)
        started = time.perf_counter()
        failed_in_a_row: list[str] = []
        for done, item in enumerate(items, 1):
            t0 = time.perf_counter()
            hits = index.search(
                item.question, k=max(RANKING_DEPTH, k), fusion=fusion, bm25_weight=bm25_weight
            )
            retrieve = time.perf_counter() - t0
            ranking = doc_ranking(h.doc_id for h in hits)[: max(CUTOFFS)]
            if len(failed_in_a_row) >= MAX_ERRORS_IN_A_ROW:
                error = f"not asked after {len(failed_in_a_row)} failed answers in a row"
                results.append(score(item, "", False, ranking=ranking, error=error))
            else:
                stream, error, kind = None, None, None
                try:
                    stream = answer_stream(
                        item.question,
                        hits[:k],
                        generator,
                        index.embedder,
                        retrieve,
                        index.document_frequencies,
                    )
                    stream.result()
                    failed_in_a_row.clear()
                except LLMError as e:
                    error, kind = str(e), e.kind
                    failed_in_a_row.append(error)
                answer = stream.answer if stream else None
                results.append(_scored(item, answer, ranking, error, kind))
            if progress:
                progress("questions", done, len(items))
    except KeyboardInterrupt:  # keep what was scored; the question being asked is left out
        interrupted = True
    metrics, sizes = aggregate(results)
    info = index.info()
    result = EvalResult(
        gold_digest=gold_digest(items),
        questions=len(items),
        config={
            "k": k,
            "fusion": fusion,
            "bm25_weight": bm25_weight,
            "answerer": generator.name,
            "embedder": info.embedder,
            "documents": info.documents,
            "chunks": info.chunks,
        },
        metrics=metrics,
        denominators=sizes,
        items=results,
        seconds=round(time.perf_counter() - started, 1),
        interrupted=interrupted,
    )
    if interrupted:
        raise EvalInterrupted(result)
    return result
