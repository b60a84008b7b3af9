"""Retrieval metrics with binary relevance: recall@k, MRR@k, nDCG@k.

Hits are ranked chunks; a document counts once, at the rank of its best chunk, so an
article split into many chunks neither helps nor hurts its own score.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def doc_ranking(doc_ids: Iterable[str]) -> list[str]:
    """Documents in order of their first (best) chunk."""
    seen: dict[str, None] = {}
    for d in doc_ids:
        seen.setdefault(d, None)
    return list(seen)


def recall_at(ranking: Sequence[str], relevant: set[str], k: int) -> float:
    """Share of the relevant documents found in the top ``k``."""
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def mrr_at(ranking: Sequence[str], relevant: set[str], k: int) -> float:
    """1 / rank of the first relevant document in the top ``k`` (0 if none)."""
    for rank, d in enumerate(ranking[:k], 1):
        if d in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranking: Sequence[str], relevant: set[str], k: int) -> float:
    """Normalized discounted cumulative gain with binary gains."""
    dcg = sum(1.0 / math.log2(r + 1) for r, d in enumerate(ranking[:k], 1) if d in relevant)
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(relevant), k) + 1))
    return dcg / ideal if ideal else 0.0


def retrieval_metrics(
    rankings: Sequence[Sequence[str]], gold: Sequence[set[str]]
) -> dict[str, float]:
    """Mean R@1, R@5, R@10, MRR@10 and nDCG@10 over queries."""
    n = len(rankings)
    if n == 0:
        return {}
    pairs = list(zip(rankings, gold, strict=True))
    return {
        "R@1": sum(recall_at(r, g, 1) for r, g in pairs) / n,
        "R@5": sum(recall_at(r, g, 5) for r, g in pairs) / n,
        "R@10": sum(recall_at(r, g, 10) for r, g in pairs) / n,
        "MRR@10": sum(mrr_at(r, g, 10) for r, g in pairs) / n,
        "nDCG@10": sum(ndcg_at(r, g, 10) for r, g in pairs) / n,
    }
