"""Near-miss benchmark: KorQuAD 1.0 dev questions asked about a look-alike of their entity.

A user asks about 카카오브레인 and the index holds 카카오엔터프라이즈: the gate must not answer
with the other company's facts. Here, each sampled question (held-out half of the articles, as
in bench_answerability.py) whose entity E its gold paragraph writes is asked again with E
replaced by E', a name from another article that looks like E as the gate defines it (the
same first two syllables, or the same ending after a different start:
`rag.lookalike._looks_alike`) and that E's article never writes. Names are the runs of nouns
holding a proper noun that Kiwi finds in the paragraphs (`rag.lookalike.entities`).

With ``--contrasts``, the swap is a word that sets the subject against others of its kind
instead (`rag.answerable._CONTRARIES`: 전임/신임, 연간/분기, 첫/마지막, 최대/최소, 최고/최저),
turned into its other side ("최초의 우주인" -> "최후의 우주인"), in every question of the split
holding one whose paragraph never writes that other side.

The swapped question is searched and decided as a user's would be (`Index.search`,
`rag.answerable.decide`). The right output is a refusal: the question asks for a fact of
E's paragraph about an entity that paragraph does not name. Swaps whose passages hold both E'
and the gold span (the same fact may hold for E') are counted apart. The same questions
unswapped are decided too: how many the gate answers at all.

    python benchmarks/bench_nearmiss.py --index /tmp/rag-bench-korquad --questions 600
    python benchmarks/bench_nearmiss.py --index /tmp/rag-bench-korquad --contrasts
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

from bench_answerability import holds, questions
from bench_korquad import DATA, load

from rag import Index, answerable, korean, lookalike


def names_by_article(records: list[dict]) -> dict[str, set[str]]:
    """The names each article's paragraphs write (no spaces), by article title."""
    texts = [r["text"] for r in records]
    out: dict[str, set[str]] = defaultdict(set)
    for record, tokens in zip(records, korean.tagged_batch(texts), strict=True):
        for name in lookalike.entities(record["text"], tokens):
            out[record["title"]].add(lookalike.nospace(name))
    return out


def swap(row: dict, paragraph: str, names: dict[str, set[str]], rng: random.Random) -> dict | None:
    """The question with one entity its paragraph writes replaced by a look-alike from
    another article that the question's article never writes; ``None`` if it has none."""
    [tokens] = korean.tagged_batch([row["q"]])
    own = names[row["title"]]
    written = lookalike.nospace(paragraph)
    for entity in lookalike.entities(row["q"], tokens):
        wanted = lookalike.nospace(entity)
        if len(wanted) < 2 or wanted not in written:
            continue
        others = sorted(
            {
                n
                for title, ns in names.items()
                if title != row["title"]
                for n in ns
                if lookalike._looks_alike(n, wanted) and n not in written and n not in own
            }
        )
        if others:
            other = rng.choice(others)
            at = row["q"].index(entity)
            rest = korean.with_particle(other, row["q"][at + len(entity) :])
            return {"entity": entity, "other": other, "q": row["q"][:at] + other + rest}
    return None


# The other side of each contrast word, as a question would write it.
_OTHER_SIDE = {
    "전임": "신임", "신임": "전임", "후임": "전임", "연간": "분기",
    "최초": "최후", "최후": "최초", "처음": "마지막", "첫": "마지막", "마지막": "처음",
    "최대": "최소", "최다": "최소", "최소": "최대", "최고": "최저", "최저": "최고",
}  # fmt: skip


def contrast_swap(row: dict, paragraph: list[korean.Token]) -> dict | None:
    """The question with its first contrast word turned into the other side (마지막 before
    a space as 첫: "마지막 경기" -> "첫 경기", else 처음: "마지막으로" -> "처음으로");
    ``None`` if it holds none, or its paragraph (``paragraph``, tagged) writes the other
    side, so that the swapped question may be answered there too."""
    [tokens] = korean.tagged_batch([row["q"]])
    said = {t.form for t in paragraph}
    for t in tokens:
        if t.form not in _OTHER_SIDE:
            continue
        other = next(b if t.form in a else a for a, b in answerable._CONTRARIES if t.form in a | b)
        if said & other:
            return None
        end = t.start + t.len
        word = _OTHER_SIDE[t.form]
        if t.form == "마지막" and row["q"][end : end + 1] == " ":
            word = "첫"
        if t.form == "첫" and row["q"][end : end + 1] != " ":
            return None  # 첫째, 첫번째: an ordinal, not a side
        swapped = row["q"][: t.start] + word + row["q"][end:]
        return {"entity": t.form, "other": word, "q": swapped}
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-bench-korquad"))
    parser.add_argument("--embedder", default="onnx-int8")
    parser.add_argument("--questions", type=int, default=600, help="Sampled from the split.")
    parser.add_argument("-k", type=int, default=5, help="Passages shown to the gate.")
    parser.add_argument("--tune", action="store_true", help="The tuning half instead.")
    parser.add_argument("--show", type=int, default=10, help="Answered swaps printed.")
    parser.add_argument(
        "--contrasts", action="store_true", help="Swap contrast words, in every question."
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    records, _ = load(args.data)
    tuning, held_out = questions(args.data)
    rows = tuning if args.tune else held_out
    if not args.contrasts:
        rows = random.Random(0).sample(rows, args.questions)
    index = Index.open(args.index, embedder=args.embedder, create=True)
    index.add(records)  # unchanged paragraphs are not embedded again
    model = index.embedder.model_id
    started = time.perf_counter()
    by_doc = {r["id"]: r["text"] for r in records}
    if args.contrasts:
        tagged = dict(zip(by_doc, korean.tagged_batch(list(by_doc.values())), strict=True))
    else:
        names = names_by_article(records)
    rng = random.Random(0)
    results = []
    for row in rows:
        if args.contrasts:
            swapped = contrast_swap(row, tagged[row["doc"]])
        else:
            swapped = swap(row, by_doc[row["doc"]], names, rng)
        if swapped is None:
            continue
        hits = index.search(swapped["q"], k=args.k)
        original = index.search(row["q"], k=args.k)
        decision = answerable.decide(swapped["q"], hits, index.document_frequencies, model)
        before = answerable.decide(row["q"], original, index.document_frequencies, model)
        other = lookalike.nospace(swapped["other"])
        results.append(
            {
                **swapped,
                "spans": row["spans"],
                "answered": decision.answerable,
                "reason": decision.reason,
                "answered_unswapped": before.answerable,
                "other_holds_span": any(
                    other in lookalike.nospace(h.text) and holds(h.text, row["spans"]) for h in hits
                ),
            }
        )
    clean = [r for r in results if not r["other_holds_span"]]
    both = [r for r in clean if r["answered_unswapped"]]
    report = {
        "split": "tuning (first half of the articles)" if args.tune else "held-out (second half)",
        "swaps": "contrast words" if args.contrasts else "look-alike names",
        "questions": len(rows),
        "swapped": len(results),
        "other_holds_span": len(results) - len(clean),
        "refused_swapped": _share([not r["answered"] for r in clean]),
        "refused_swapped_of_answered_unswapped": _share([not r["answered"] for r in both]),
        "answered_unswapped": _share([r["answered_unswapped"] for r in clean]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:<40} {value}")
    print("Answered swaps:", file=sys.stderr)
    for r in [r for r in both if r["answered"]][: args.show]:
        print(f"  {r['q']}  ({r['entity']} -> {r['other']}; {r['reason']})", file=sys.stderr)


def _share(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


if __name__ == "__main__":
    main()
