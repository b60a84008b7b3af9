"""Answerability benchmark on KorQuAD 1.0 dev in open retrieval, through the public API.

All 964 paragraphs are indexed as articles (the index bench_korquad.py builds; built here if
missing). Each sampled question is asked twice:

- **present**: the top k hits of `Index.search`. The right output is an answer whose quoted
  sentences hold the gold span (the extractive answerer's text; `span hit`). A refusal here
  is a false refusal.
- **removed**: the same search run deeper, the gold paragraph's hits dropped, the first k
  kept -- what the index would return without that paragraph, since ranking is per chunk
  and the other chunks' scores do not depend on it (BM25's corpus statistics aside). The
  right output is a refusal. When a kept passage still holds the gold span, another
  paragraph may really answer: those questions are counted apart (and a few printed).

The questions are split by article: the first half of the articles by title is the tuning
split (``--tune`` sweeps the gate's weights there), the second half is reported.

``--sentences`` asks a harder near miss of the questions that ask for a kind of answer (a
person, date, number, amount or place): the gold paragraph alone, once whole (the right
output is an answer) and once without the sentences holding the gold span (a refusal). The
paragraph still has the question's names and most of its words, but not the fact: the
kind-of-answer checks must tell. Reported per kind, for both halves.

    python benchmarks/bench_answerability.py --index /work/cache/kq   # 300 held-out questions
    python benchmarks/bench_answerability.py --tune --questions 300   # sweep on the tuning half
    python benchmarks/bench_answerability.py --index "$(mktemp -d)" --gate   # CI's gate
    python benchmarks/bench_answerability.py --sentences                    # answer sentence cut

``--gate`` compares the 300 held-out questions' numbers with evals/benchmark_gates.json and
exits 1 on a regression (benchmarks/gate.py); ``--update-gate`` records them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import gate
from bench_korquad import DATA, load

from rag import Index, answerable
from rag.answer import answer_stream
from rag.backends import get_generator
from rag.kinds import answer_kind
from rag.korean import passage_sentences
from rag.metrics import normalize_fact
from rag.records import Hit
from rag.support import text_vectors


def questions(path: Path) -> tuple[list[dict], list[dict]]:
    """Every question with its paragraph id and spans, split by article title order."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    rows = []
    for a, article in enumerate(data):
        for p, para in enumerate(article["paragraphs"]):
            for qa in para["qas"]:
                spans = list(dict.fromkeys(x["text"] for x in qa["answers"]))
                doc = f"kq-{a:03d}-{p:02d}"
                rows.append(
                    {"q": qa["question"], "doc": doc, "spans": spans, "title": article["title"]}
                )
    first = _first_half(data)
    return [r for r in rows if r["title"] in first], [r for r in rows if r["title"] not in first]


def _first_half(data: list[dict]) -> set[str]:
    """The tuning split: the first half of the articles' titles in sorted order."""
    titles = sorted({article["title"] for article in data})
    return set(titles[: len(titles) // 2])


def holds(text: str, spans: list[str]) -> bool:
    plain = normalize_fact(text)
    return any(normalize_fact(s) in plain for s in spans)


def run(
    index: Index, rows: list[dict], k: int, depth: int, aliases: dict, answer: bool
) -> list[dict]:
    """Search once per question; decide with the gold paragraph present and removed."""
    generator = get_generator("extractive", embedder=index.embedder) if answer else None
    model = index.embedder.model_id
    out = []
    for row in rows:
        gold = {row["doc"], aliases.get(row["doc"], row["doc"])}
        if "hits" not in row:  # the sweep decides on the same hits with other settings
            row["hits"] = index.search(row["q"], k=depth)
        hits = row["hits"]
        present = hits[:k]
        removed = [h for h in hits if h.doc_id not in gold][:k]
        result: dict[str, Any] = {
            "question": row["q"],
            "spans": row["spans"],
            "retrieved": any(h.doc_id in gold for h in present),
            "other_holds_span": any(holds(h.text, row["spans"]) for h in removed),
            "present": answerable.decide(row["q"], present, index.document_frequencies, model),
            "removed": answerable.decide(row["q"], removed, index.document_frequencies, model),
            "removed_hits": removed,
        }
        if generator is not None and result["present"].answerable:
            # The same gate as the decision above (with the index's IDF), as `Index.ask` has.
            stream = answer_stream(
                row["q"], present, generator, index.embedder, stats=index.document_frequencies
            )
            reply = stream.result()
            result["answer"] = reply.text
            result["span_hit"] = not reply.refused and holds(reply.text, row["spans"])
        out.append(result)
    return out


def without_answer(path: Path, tuning: bool) -> list[dict]:
    """The questions of one split that ask for a kind of answer, each with its paragraph
    whole and without the sentences holding a gold span (questions whose span the rest of
    the paragraph still holds are left out)."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    first = _first_half(data)
    rows = []
    for article in data:
        if (article["title"] in first) != tuning:
            continue
        for para in article["paragraphs"]:
            text = para["context"]
            spans = passage_sentences(text)
            for qa in para["qas"]:
                kind = answer_kind(qa["question"])
                golds = {a["text"] for a in qa["answers"]}
                cut = {
                    i
                    for i, (a, b) in enumerate(spans)
                    for gold in qa["answers"]
                    if gold["text"] in text[a:b]
                    or (a < gold["answer_start"] + len(gold["text"]) and gold["answer_start"] < b)
                }
                kept = " ".join(text[a:b] for i, (a, b) in enumerate(spans) if i not in cut)
                if kind != "other" and kept.strip() and not any(g in kept for g in golds):
                    rows.append(
                        {"q": qa["question"], "kind": kind, "title": article["title"]}
                        | {"whole": text, "cut": kept}
                    )
    return rows


def run_without_answer(index: Index, rows: list[dict]) -> dict[str, dict[str, Any]]:
    """Per kind: questions, answered with the paragraph whole, refused without the answer."""
    embedder = index.embedder
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        query = embedder.embed_query(row["q"])
        whole, cut = text_vectors(embedder, [row["whole"], row["cut"]])
        decided = [
            answerable.decide(
                row["q"],
                [_paragraph(text, row["title"], float(query @ vector))],
                index.document_frequencies,
                embedder.model_id,
            ).answerable
            for text, vector in ((row["whole"], whole), (row["cut"], cut))
        ]
        for kind in (row["kind"], "all"):
            counts = table.setdefault(kind, {"questions": 0, "answered": 0, "refused": 0})
            counts["questions"] += 1
            counts["answered"] += decided[0]
            counts["refused"] += not decided[1]
    for counts in table.values():
        counts["answered_share"] = round(counts["answered"] / counts["questions"], 3)
        counts["refused_share"] = round(counts["refused"] / counts["questions"], 3)
    return dict(sorted(table.items()))


def _paragraph(text: str, title: str, dense: float) -> Hit:
    return Hit(
        doc_id="paragraph",
        chunk_id="paragraph#0",
        title=title,
        date=None,
        source=None,
        path=None,
        text=text,
        start=0,
        end=len(text),
        score=1.0,
        dense_score=dense,
    )


def metrics(results: list[dict]) -> dict[str, Any]:
    clean = [r for r in results if not r["other_holds_span"]]
    refused = [not r["removed"].answerable for r in clean]
    false = [not r["present"].answerable for r in results]
    spans = [r.get("span_hit", False) for r in results]
    answered = [r for r in results if r["present"].answerable]
    return {
        "questions": len(results),
        "refusal_accuracy": round(sum(refused) / len(refused), 3) if refused else None,
        "refusal_over": len(refused),
        "other_paragraph_holds_span": len(results) - len(clean),
        "refused_anyway_when_other_holds_span": sum(
            not r["removed"].answerable for r in results if r["other_holds_span"]
        ),
        "false_refusals": round(sum(false) / len(false), 3) if false else None,
        "false_refusals_gold_retrieved": _share(
            [not r["present"].answerable for r in results if r["retrieved"]]
        ),
        "span_hit": round(sum(spans) / len(spans), 3) if spans else None,
        "span_hit_of_answered": _share([r.get("span_hit", False) for r in answered]),
        "gold_in_top_k": _share([r["retrieved"] for r in results]),
    }


# metric: (tolerance, better, why) for --gate; one question moves a rate by 1/230 or 1/300.
GATED = {
    "refusal_accuracy": (
        0.01,
        "higher",
        "one of the 230 removed cases is 0.0043; two may flip between CPUs",
    ),
    "false_refusals": (0.01, "lower", "one of 300 questions is 0.0033; a CPU moved it by one"),
    "span_hit": (0.01, "higher", "one of 300 questions is 0.0033"),
    "gold_in_top_k": (0.007, "higher", "one of 300 questions is 0.0033"),
}


def _share(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def sweep(index: Index, rows: list[dict], k: int, depth: int, aliases: dict) -> dict[str, Any]:
    """Refusal accuracy and false refusals for each predicate weight, question-head weight
    and coverage threshold; the best is the largest refusal accuracy minus false refusals
    with false refusals at most 0.09 (a margin under the 0.10 target). Korean decisions are
    `score >= MIN_COVERAGE` once a window passes the entity, number and answer-kind checks
    (the score shifted by the passage's dense cosine, `answerable.DENSE_WEIGHT`), so one run
    per set of weights covers every threshold."""
    table = []
    chosen = answerable.HEAD_WEIGHT, answerable.PREDICATE_WEIGHT, answerable.DENSE_WEIGHT
    weights = [(h, p, chosen[2]) for h in (1.0, 0.5, 0.25) for p in (0.3, 0.6)]
    for dense in (0.0, 1.0, 2.0, 4.0):  # a threshold here is DENSE_NEUTRAL moved by the weight
        weights.append((*chosen[:2], dense))
    for head, weight, dense in weights:
        answerable.HEAD_WEIGHT, answerable.PREDICATE_WEIGHT = head, weight
        answerable.DENSE_WEIGHT = dense
        results = run(index, rows, k, depth, aliases, answer=False)
        clean = [r for r in results if not r["other_holds_span"]]
        for step in range(50, 71):
            threshold = step / 100
            refusal = sum(r["removed"].score < threshold for r in clean) / len(clean)
            false = sum(r["present"].score < threshold for r in results) / len(results)
            table.append(
                {
                    "head_weight": head,
                    "predicate_weight": weight,
                    "dense_weight": dense,
                    "min_coverage": threshold,
                    "refusal": round(refusal, 3),
                    "false": round(false, 3),
                }
            )
        print(f"  head {head} predicate {weight} dense {dense}: done", file=sys.stderr, flush=True)
    answerable.HEAD_WEIGHT, answerable.PREDICATE_WEIGHT, answerable.DENSE_WEIGHT = chosen
    ok = [t for t in table if t["false"] <= 0.09] or table
    best = max(ok, key=lambda t: (round(t["refusal"] - t["false"], 3), -t["min_coverage"]))
    return {"best": best, "table": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-bench-korquad"))
    parser.add_argument("--embedder", default="onnx-int8")
    parser.add_argument("--questions", type=int, default=300, help="Sampled from the split.")
    parser.add_argument("-k", type=int, default=5, help="Passages shown to the answerer.")
    parser.add_argument("--depth", type=int, default=15, help="Hits searched before dropping gold.")
    parser.add_argument("--tune", action="store_true", help="Sweep on the tuning half instead.")
    parser.add_argument("--show", type=int, default=5, help="Spot-checks printed per kind.")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--gate", action="store_true", help="Exit 1 on a regression.")
    parser.add_argument("--update-gate", action="store_true", help="Record this run's numbers.")
    parser.add_argument(
        "--sentences", action="store_true", help="Cut the answer's sentences, per kind."
    )
    args = parser.parse_args()
    if (args.gate or args.update_gate) and (args.tune or args.questions != 300 or args.sentences):
        parser.error("--gate and --update-gate take the 300 held-out questions")

    records, _ = load(args.data)
    tuning, held_out = questions(args.data)
    rows = random.Random(0).sample(tuning if args.tune else held_out, args.questions)
    index = Index.open(args.index, embedder=args.embedder, create=True)
    started = time.perf_counter()
    report = index.add(records)  # unchanged paragraphs are not embedded again
    aliases = {}
    for dup in report.duplicates:
        record, _, original = dup.reason.removeprefix("record ").partition(": duplicate of ")
        aliases[record] = original
    index.search("warm up", k=1)
    indexed = time.perf_counter() - started
    started = time.perf_counter()
    if args.sentences:
        halves = {
            name: run_without_answer(index, without_answer(args.data, tuning))
            for name, tuning in (("tuning", True), ("held-out", False))
        }
        if args.json:
            print(json.dumps(halves, indent=2))
        else:
            _print_halves(halves)
        print(f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        return
    if args.tune:
        result: dict[str, Any] = sweep(index, rows, args.k, args.depth, aliases)
    else:
        results = run(index, rows, args.k, args.depth, aliases, answer=True)
        result = metrics(results)
        _spot_checks(results, args.show)
    result.update(
        split="tuning (first half of the articles by title)"
        if args.tune
        else "held-out (second half)",
        settings={
            "k": args.k,
            "depth": args.depth,
            "min_coverage": answerable.MIN_COVERAGE,
            "predicate_weight": answerable.PREDICATE_WEIGHT,
            "head_weight": answerable.HEAD_WEIGHT,
            "dense_weight": answerable.DENSE_WEIGHT,
            "dense_neutral": answerable.DENSE_NEUTRAL,
            "window": answerable.WINDOW,
        },
        index_seconds=round(indexed, 1),
        seconds=round(time.perf_counter() - started, 1),
        seconds_per_question=round((time.perf_counter() - started) / len(rows), 3),
        load_average=os.getloadavg(),
    )
    if args.json or args.tune:
        print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    else:
        for key, value in result.items():
            print(f"{key:<40} {value}")
    settings = {**result["settings"], "questions": args.questions, "embedder": args.embedder}
    if args.update_gate:
        gate.update("answerability", result, settings, GATED)
    elif args.gate:
        sys.exit(gate.check("answerability", result, settings))


def _print_halves(halves: dict[str, dict[str, dict[str, Any]]]) -> None:
    for name, table in halves.items():
        print(f"{name} half: answered whole / refused without the answer's sentences")
        for kind, c in table.items():
            print(
                f"  {kind:<8}{c['questions']:>5}   {c['answered_share']:.3f} "
                f"({c['answered']})   {c['refused_share']:.3f} ({c['refused']})"
            )


def _spot_checks(results: list[dict], show: int) -> None:
    """Print a few questions another paragraph may answer, false refusals and wrong answers."""

    def line(r: dict, case: str) -> str:
        d = r[case]
        return f"  {r['question']}  gold {r['spans'][0]!r}  -> {case}: {d.answerable} ({d.reason})"

    other = [r for r in results if r["other_holds_span"]]
    print(
        f"Another paragraph holds the gold span ({len(other)}; not in refusal accuracy):",
        file=sys.stderr,
    )
    for r in other[:show]:
        print(line(r, "removed"), file=sys.stderr)
        hit = next(h for h in r["removed_hits"] if holds(h.text, r["spans"]))
        print(f"      {hit.doc_id} {hit.title}: {hit.text[:160]!r}", file=sys.stderr)
    print("False refusals:", file=sys.stderr)
    for r in [r for r in results if not r["present"].answerable][:show]:
        print(line(r, "present"), file=sys.stderr)
    print("Answered without the gold paragraph:", file=sys.stderr)
    for r in [r for r in results if r["removed"].answerable and not r["other_holds_span"]][:show]:
        print(line(r, "removed"), file=sys.stderr)


if __name__ == "__main__":
    main()
