"""English names a Korean article translates (Trade Day: 무역의날): the refusal gate's threshold.

`rag.translated` takes an English name made of English words as given by a window phrase
whose hubness-corrected cosine (CSLS) to it reaches `translated.MIN_SCORE`. This sweeps that
threshold on the English questions of a tuning set (by default evals/dev_wikinews.jsonl,
over the Korean Wikinews articles and the seed articles, as `rag eval` runs it) through
`answerable.decide` on the same retrieved passages, and reports refusal accuracy (of the
unanswerable questions) and false refusals (of the answerable ones) for each, against the
gate without translations. ``--names`` prints each translatable name's best phrase in each
retrieved passage.

``--hybrid`` measures names that open with a proper name and end in English words (Busan
Savings Bank: 부산저축은행, `names.hybrid`), which no question set holds many of. Its cases
(`evals/hybrid_names.jsonl`, made with ``--hybrid --generate``) are every Hangul name of the
Korean Wikinews articles made of a proper name and one of the kinds of institution in
`KINDS` (부산 + 저축은행), with its English name written by rule (the head romanised, the kind
in English: "Busan Savings Bank") and the sentence that names it. It asks whether that
sentence gives the name (`Translations.best` reaches the threshold on that Hangul name), and
gives each other kind of its group in its place ("Busan Bank", "Busan Securities"), a sibling
institution the sentence does not name, which it must not. Articles alternate between a
tuning and a held-out half. ``--gate`` compares the shares at `translated.MIN_SCORE` with
`evals/benchmark_gates.json` and exits 1 on a regression (CI runs it); ``--update-gate``
records them.

    python benchmarks/bench_translated.py --index /tmp/rag-bench-wikinews-dev   # builds it
    python benchmarks/bench_translated.py --names
    python benchmarks/bench_translated.py --hybrid [--gate]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gate

from rag import Index, answerable, config, translated
from rag.answerable import _sentences, _windows
from rag.names import latin_names, translatable
from rag.support import language

ROOT = Path(__file__).resolve().parent.parent
WIKINEWS = Path("/work/shared/data/kowikinews/articles.jsonl")
HYBRID = ROOT / "evals" / "hybrid_names.jsonl"
THRESHOLDS = (0.08, 0.10, 0.12, 0.14, 0.16, 0.18, 0.20)
# Kinds of institution Korean names end in, with the English word for each, in groups of
# siblings (a savings bank is not a bank). Longest first within a group: 저축은행 before 은행.
KINDS = (
    {
        "저축은행": "Savings Bank",
        "은행": "Bank",
        "증권": "Securities",
        "생명": "Life",
        "카드": "Card",
    },
    {
        "대학교": "University",
        "고등학교": "High School",
        "중학교": "Middle School",
        "초등학교": "Elementary School",
    },
    {"공항": "Airport", "항공": "Airlines"},
    {
        "경찰서": "Police Station",
        "소방서": "Fire Station",
        "지방법원": "District Court",
        "지방검찰청": "District Prosecutors Office",
        "시청": "City Hall",
        "구청": "District Office",
    },
    {
        "전자": "Electronics",
        "자동차": "Motor",
        "중공업": "Heavy Industries",
        "건설": "Construction",
        "화학": "Chemical",
        "제철": "Steel",
        "그룹": "Group",
        "백화점": "Department Store",
    },
    {
        "경기장": "Stadium",
        "박물관": "Museum",
        "도서관": "Library",
        "교회": "Church",
        "성당": "Cathedral",
        "병원": "Hospital",
        "대교": "Bridge",
        "역": "Station",
        "항": "Port",
    },
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gold", type=Path, default=ROOT / "evals" / "dev_wikinews.jsonl")
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-bench-wikinews-dev"))
    parser.add_argument("--data", type=Path, default=WIKINEWS)
    parser.add_argument("--embedder", default="auto", help="for a new index")
    parser.add_argument("-k", type=int, default=5, help="passages shown, as rag eval")
    parser.add_argument("--names", action="store_true", help="each name's best phrases")
    parser.add_argument("--hybrid", action="store_true", help="Busan Savings Bank: 부산저축은행")
    parser.add_argument("--generate", action="store_true", help="--hybrid: write its cases")
    parser.add_argument("--gate", action="store_true", help="--hybrid: exit 1 on a regression")
    parser.add_argument("--update-gate", action="store_true", help="--hybrid: record this run")
    args = parser.parse_args()
    if args.hybrid and args.generate:
        _generate_hybrid(args.data, HYBRID)
        return
    if args.hybrid:
        spec = config.embedder_spec(args.embedder, build=True)
        _hybrid(spec, args.gate, args.update_gate)
        return
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
    found = translated.Translations.of(embedder)
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


def _generate_hybrid(data: Path, out: Path) -> None:
    """Write `HYBRID`'s cases from the Wikinews articles (see the module docstring)."""
    from rag.korean import passage_sentences, tagged
    from rag.names import hangul_names, romanize

    seen: set[str] = set()
    cases = []
    for a, line in enumerate(data.open(encoding="utf-8")):
        article = json.loads(line)
        text = article["text"]
        sentences = [text[x:y] for x, y in passage_sentences(text)]
        for sentence, tokens in zip(sentences, tagged(sentences), strict=True):
            for name in hangul_names(tokens):
                for group in KINDS:
                    kind = next((k for k in group if name.endswith(k)), None)
                    head = name.removesuffix(kind) if kind else ""
                    if not kind or len(head) < 2 or name in seen:
                        continue
                    if [t.tag for t in tagged([head])[0]] != ["NNP"]:  # 국제공항, 현대(modern)
                        continue
                    seen.add(name)
                    english = romanize(head).capitalize()
                    siblings = [
                        f"{english} {v}"
                        for k, v in group.items()
                        if k != kind and head + k not in sentence
                    ]
                    cases.append(
                        {
                            "korean": name,
                            "english": f"{english} {group[kind]}",
                            "siblings": siblings,
                            "sentence": sentence,
                            "doc": article["id"],
                            "split": "held" if a % 2 else "tune",
                        }
                    )
    out.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases), "utf-8")
    print(f"{len(cases)} names written to {out}", file=sys.stderr)


def _hybrid(spec: str, check: bool, record: bool) -> None:
    from rag.backends import get_embedder
    from rag.korean import tagged

    embedder = get_embedder(spec)
    found = translated.Translations.of(embedder)
    cases = [json.loads(line) for line in HYBRID.open(encoding="utf-8")]
    analyzed = tagged([c["sentence"] for c in cases])
    scored = [
        (
            c["split"],
            c["korean"],
            found.best(c["english"], tokens),
            [found.best(s, tokens)[0] for s in c["siblings"]],
        )
        for c, tokens in zip(cases, analyzed, strict=True)
    ]
    tuning = sum(c["split"] == "tune" for c in cases)
    print(f"{len(cases)} names ({tuning} tuning), {embedder.model_id}")
    print(f"{'threshold':<12}{'tuning: given':>15}{'siblings':>10}", end="")
    print(f"{'held out: given':>18}{'siblings':>10}")
    now: dict[str, float] = {}
    counts: dict[str, int] = {}
    for threshold in THRESHOLDS:
        row = f"{threshold:<12.2f}"
        for split in ("tune", "held"):
            mine = [x for x in scored if x[0] == split]
            given = sum(s >= threshold and k == name for _, name, (s, k), _ in mine)
            others = [s for *_, sibs in mine for s in sibs]
            wrong = sum(s >= threshold for s in others)
            row += f"{given:>8}/{len(mine):<4}{wrong:>6}/{len(others):<4}"
            if threshold == translated.MIN_SCORE:
                now[f"{split}_given"] = given / len(mine)
                now[f"{split}_siblings"] = wrong / len(others)
                counts |= {f"{split}_given": len(mine), f"{split}_siblings": len(others)}
        print(row + (" (chosen)" if threshold == translated.MIN_SCORE else ""))
    if check or record:
        settings = {"names": len(cases), "embedder": spec, "min_score": translated.MIN_SCORE}
        rounded = {k: round(v, 3) for k, v in now.items()}
        if record:
            gates = {
                k: (
                    round(1 / counts[k] + 0.0005, 3),
                    "lower" if k.endswith("siblings") else "higher",
                    f"1 of its {counts[k]} {'siblings' if k.endswith('siblings') else 'names'}"
                    f" is {1 / counts[k]:.4f}",
                )
                for k in rounded
            }
            gate.update("translated_hybrid", rounded, settings, gates)
        else:
            sys.exit(gate.check("translated_hybrid", rounded, settings))


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
