"""The metrics of `rag eval`: retrieval (hit, recall, MRR, nDCG at k over documents) and
answers (exact match and token F1 on SQuAD-style tokens, gold facts found in an answer)."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

_MARKER = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_UNIT_SPACE = re.compile(r"(?<=\d[억만조]) (?=원|\d)")


# -- retrieval ---------------------------------------------------------------------------


def doc_ranking(doc_ids: Iterable[str]) -> list[str]:
    """Documents in order of their first (best) chunk."""
    seen: dict[str, None] = {}
    for d in doc_ids:
        seen.setdefault(d, None)
    return list(seen)


def hit_at(ranking: Sequence[str], relevant: set[str], k: int) -> float:
    """1 if any relevant document is in the top ``k``, else 0."""
    return 1.0 if relevant.intersection(ranking[:k]) else 0.0


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


# -- answers -----------------------------------------------------------------------------


def answer_tokens(text: str) -> list[str]:
    """The morphemes of ``text`` that carry its content, for exact match and token F1.

    Dropped: particles (J*), endings (E*), the copula 이다 (VCP, a particle in Korean school
    grammar), punctuation and symbols (S* except foreign words SL, numbers SN and hanja SH)
    and citation markers. Numbers lose their thousands separators ("1,633" -> "1633") and
    Latin letters are lowercased, so "카카오브레인이" and "카카오브레인" are the same answer.
    """
    from .korean import kiwi

    plain = _THOUSANDS.sub("", _MARKER.sub(" ", text))
    out = []
    for t in kiwi().tokenize(plain):
        tag = t.tag.split("-")[0]
        if tag[0] in "JE" or tag == "VCP" or (tag[0] == "S" and tag not in ("SL", "SN", "SH")):
            continue
        out.append(t.form.replace(",", "") if tag == "SN" else t.form.lower())
    return out


def exact_match(prediction: str, gold: str) -> float:
    """1 if both have the same `answer_tokens` in the same order, else 0."""
    return float(answer_tokens(prediction) == answer_tokens(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of precision and recall of the shared `answer_tokens` (as multisets)."""
    pred, ref = answer_tokens(prediction), answer_tokens(gold)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return float(pred == ref)  # both empty: identical
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def normalize_fact(text: str) -> str:
    """Text as compared for fact coverage: citation markers removed, whitespace collapsed,
    thousands separators dropped, "억 원" closed up to "억원" (also 만/조, and before a
    digit: "68억 8800만원"), lowercased."""
    text = _THOUSANDS.sub("", _MARKER.sub("", text))
    return _UNIT_SPACE.sub("", " ".join(text.split())).lower()


def leads_with_fact(answer: str, facts: Sequence[Sequence[str]]) -> bool:
    """Whether the first sentence of ``answer`` holds one of ``facts``."""
    from .korean import sentence_spans

    plain = _MARKER.sub(" ", answer)
    spans = sentence_spans(plain)
    first = plain[slice(*spans[0])] if spans else ""
    return len(missing_facts(first, facts)) < len([f for f in facts if f])


def missing_facts(answer: str, facts: Sequence[Sequence[str]]) -> list[str]:
    """The facts (each named by its first variant) none of whose variants is in ``answer``."""
    plain = normalize_fact(answer)
    return [f[0] for f in facts if f and not any(normalize_fact(v) in plain for v in f)]
