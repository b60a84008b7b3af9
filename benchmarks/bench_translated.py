"""English names a Korean article translates (Trade Day: 무역의날): the refusal gate's threshold.

`rag.translated` takes an English name made of English words as given by a window phrase
whose hubness-corrected cosine (CSLS) to it reaches `translated.MIN_SCORE`. This sweeps that
threshold on the English questions of a tuning set (by default evals/dev_wikinews.jsonl,
over the Korean Wikinews articles and the seed articles, as `rag eval` runs it) through
`answerable.decide` on the same retrieved passages, and reports refusal accuracy (of the
unanswerable questions) and false refusals (of the answerable ones) for each, against the
gate without translations. ``--names`` prints each translatable name's best phrase in each
retrieved passage.

    python benchmarks/bench_translated.py --index /tmp/rag-bench-wikinews-dev   # builds it
    python benchmarks/bench_translated.py --names
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rag import Index, answerable, config, translated
from rag.answerable import _sentences, _windows
from rag.names import latin_names, translatable
from rag.support import language, text_vectors

ROOT = Path(__file__).resolve().parent.parent
WIKINEWS = Path("/work/shared/data/kowikinews/articles.jsonl")
THRESHOLDS = (0.08, 0.10, 0.12, 0.14, 0.16, 0.18, 0.20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gold", type=Path, default=ROOT / "evals" / "dev_wikinews.jsonl")
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-bench-wikinews-dev"))
    parser.add_argument("--data", type=Path, default=WIKINEWS)
    parser.add_argument("--embedder", default="auto", help="for a new index")
    parser.add_argument("-k", type=int, default=5, help="passages shown, as rag eval")
    parser.add_argument("--names", action="store_true", help="each name's best phrases")
    args = parser.parse_args()
    if args.index.exists():
        index = Index.open(args.index)
    else:
        index = Index.create(args.index, embedder=config.embedder_spec(args.embedder, build=True))
        print(f"indexing {args.data} and the seed articles into {args.index}", file=sys.stderr)
        index.add([args.data, ROOT / "examples" / "articles"])
    rows = [json.loads(line) for line in args.gold.open(encoding="utf-8")]
    rows = [r for r in rows if language(r["question"]) == "en"]
    hits = [index.search(r["question"], k=args.k) for r in rows]
    embedder = index.embedder
    found = translated.Translations(lambda texts: text_vectors(embedder, texts))
    if args.names:
        _print_names(rows, hits, found)
    chosen = translated.MIN_SCORE
    answerable_ = sum(r.get("answerable", True) for r in rows)
    print(f"{len(rows)} English questions ({answerable_} answerable), {embedder.model_id}")
    print(f"{'translations':<16}{'refusal accuracy':>18}{'false refusals':>16}")
    for threshold in (None, *THRESHOLDS):
        if threshold is not None:
            translated.MIN_SCORE = threshold
        refused = [
            not answerable.decide(
                r["question"],
                h,
                index.document_frequencies,
                embedder.model_id,
                None if threshold is None else found,
            ).answerable
            for r, h in zip(rows, hits, strict=True)
        ]
        right = sum(x for x, r in zip(refused, rows, strict=True) if not r.get("answerable", True))
        false = sum(x for x, r in zip(refused, rows, strict=True) if r.get("answerable", True))
        label = "none" if threshold is None else f">= {threshold:.2f}"
        label += " (chosen)" if threshold == chosen else ""
        print(
            f"{label:<16}{right / (len(rows) - answerable_):>12.3f} ({right:>2})"
            f"{false / answerable_:>10.3f} ({false:>2})"
        )
    translated.MIN_SCORE = chosen


def _print_names(rows: list[dict], hits: list, found: translated.Translations) -> None:
    for row, passages in zip(rows, hits, strict=True):
        names = [n for n in latin_names(row["question"]) if translatable(n)]
        if not names:
            continue
        print(row["question"])
        sentences, titles = _sentences(passages)
        for name in names:
            best: dict[int, tuple[float, str]] = {}
            for i, window in _windows(sentences):
                n = sentences[i].n
                tokens = [t for r in window for t in sentences[r].tokens] + titles[n - 1]
                best[n] = max(best.get(n, (-9.0, "")), found.best(name, tokens))
            shown = ", ".join(
                f"{phrase} {score:.3f} ({passages[n - 1].title or passages[n - 1].doc_id})"
                for n, (score, phrase) in sorted(best.items(), key=lambda x: -x[1][0])[:3]
            )
            print(f"  {name}: {shown}")


if __name__ == "__main__":
    main()
