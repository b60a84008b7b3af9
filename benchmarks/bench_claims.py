"""Perturbation benchmark for the citation check (`Evidence.support`).

True claims are built from article sentences (verbatim, shortened to a clause, reordered,
with a reworded ending) and each is altered the ways LLM answers go wrong: a number swapped
(another number of the same article, or the value scaled), the subject swapped for another
entity (of the same article or of the corpus), negated, or the direction of a change
reversed. A claim cites the passage (a ~600-character run of sentences) that holds its
source sentence. The check should verify the true claims and reject the altered ones.

Articles: the two bundled seed articles and the Korean Wikinews corpus (CC BY 2.5). The
split is by article: Wikinews articles with an even index are the tuning split (rules and
thresholds were adjusted looking at these), odd ones are held back; the seed articles and
the hand-written English claims are reported on their own.

    python benchmarks/bench_claims.py --generate      # rebuild evals/claims.jsonl (seed 11)
    python benchmarks/bench_claims.py                 # score it (embedder: auto)
    python benchmarks/bench_claims.py --errors 20     # and show 20 wrong verdicts
    python benchmarks/bench_claims.py --gate          # CI's gate (evals/benchmark_gates.json)

``--gate`` compares each split's share of true claims verified and of altered claims rejected
with the recorded ones and exits 1 on a regression (benchmarks/gate.py); ``--update-gate``
records them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import gate

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "examples" / "articles"
WIKINEWS = Path("/work/shared/data/kowikinews/articles.jsonl")
OUT = ROOT / "evals" / "claims.jsonl"
LICENCE = (
    "Claims derived from Korean Wikinews articles (ko.wikinews.org, CC BY 2.5; each record "
    "names its article) and from the two seed articles in examples/articles."
)
SEED = 11
ARTICLES = 200  # Wikinews articles sampled
PER_ARTICLE = 2  # source sentences per article
PASSAGE_CHARS = 600

SPLITS = ("tune", "held", "seed", "english")  # the gated ones (--gate)

# Hand-written English renderings of seed-article sentences, true and altered; "source"
# is a Korean snippet that finds the passage.
ENGLISH = ROOT / "evals" / "claims_en.json"


# ------------------------------------------------------------------------------ articles


def load_articles() -> list[dict]:
    """Seed articles first (split ``seed``), then Wikinews (``tune``/``held``)."""
    articles = [
        {"id": p.stem, "title": p.stem, "text": p.read_text(encoding="utf-8"), "split": "seed"}
        for p in sorted(SEEDS.glob("*.txt"))
    ]
    rows = [json.loads(line) for line in WIKINEWS.open(encoding="utf-8")]
    for i, r in enumerate(rows):
        r["split"] = "tune" if i % 2 == 0 else "held"
        r["title"] = r.get("title", r["id"])
    return articles + rows


def passages_of(text: str) -> list[tuple[str, list[str]]]:
    """Runs of sentences of about PASSAGE_CHARS characters: each as the article's own text
    (line breaks kept, as a chunk keeps them) and as its sentences."""
    from rag.korean import sentence_spans

    groups: list[list[tuple[int, int]]] = [[]]
    for a, b in sentence_spans(text):
        if sum(y - x for x, y in groups[-1]) > PASSAGE_CHARS:
            groups.append([])
        groups[-1].append((a, b))
    return [(text[g[0][0] : g[-1][1]], [text[a:b] for a, b in g]) for g in groups if g]


_GOOD = re.compile(r"(?:다|다\.|요\.)$")


def usable(sentence: str) -> bool:
    """A declarative sentence of a sensible length, not a quote or a byline."""
    return (
        25 <= len(sentence) <= 220
        and bool(_GOOD.search(sentence))
        and not re.search(r"[“”\"]|기자|Copyright|무단", sentence)
    )


# ---------------------------------------------------------------------------- true forms


_LEADS = re.compile(
    r"^(?:한편|또한|또|이날|이에 따라|그러나|하지만|특히|다만|이어|이후|현재)[,\s]+"
)


def shorten(sentence: str) -> str | None:
    """The sentence without parentheticals, a leading connective or an earlier clause."""
    out = re.sub(r"\s*\([^()]*\)", "", sentence)
    out = _LEADS.sub("", out)
    parts = re.split(r"(?<=[며고서데만]), |(?<=으며) |(?<=했으며) ", out)
    if len(parts) > 1 and len(parts[-1].split()) >= 4:
        out = parts[-1]
    return out if out != sentence else None


def reorder(sentence: str, rng: random.Random) -> str | None:
    """Move a time or place phrase ("16일", "서울에서") to the front of the sentence."""
    words = sentence.split()
    movable = [
        i
        for i, w in enumerate(words[1:-1], 1)
        if re.fullmatch(r"(?:\d+(?:년|월|일)|[가-힣]{2,}(?:에서|에는))", w)
        # only a whole phrase: the word before it ends one ("샤오산 공항에서" stays)
        and re.search(r"(?:[은는이가을를에서고며로],?|,)$", words[i - 1])
    ]
    if not movable:
        return None
    i = rng.choice(movable)
    return " ".join([words[i], *words[:i], *words[i + 1 :]])


_ENDINGS = [("했다.", "하였다."), ("됐다.", "되었다."), ("했다", "하였다"), ("됐다", "되었다")]


def reword(sentence: str) -> str | None:
    """The same sentence with a synonymous ending ("했다" -> "하였다")."""
    for old, new in _ENDINGS:
        if sentence.endswith(old):
            return sentence[: -len(old)] + new
    return None


# ------------------------------------------------------------------------- altered forms


def swap_number(claim: str, article: str, rng: random.Random) -> str | None:
    """Replace one number by another of the article (a different value) or scale it."""
    from rag.quantities import quantities

    qs = [q for q in quantities(claim) if q.text and re.search(r"\d", q.text)]
    if not qs:
        return None
    q = rng.choice(qs)
    digits = re.search(r"\d[\d,.]*", q.text)
    assert digits is not None
    others = [
        m.group(0)
        for m in re.finditer(r"\d[\d,.]*\d|\d", article)
        if float(m.group(0).replace(",", "").rstrip(".") or 0)
        != float(digits.group(0).replace(",", "").rstrip(".") or 0)
    ]
    if others and rng.random() < 0.5:
        new = rng.choice(others)
    else:
        value = float(digits.group(0).replace(",", "").rstrip("."))
        new = _fmt(
            value * rng.choice([10, 3, 0.5]) if value > 31 else value + rng.choice([1, 2, 3])
        )
    replaced = q.text.replace(digits.group(0), new, 1)
    return claim[: q.start] + replaced + claim[q.end :]


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.1f}"


def swap_subject(
    claim: str, article_entities: list[str], corpus: list[str], rng: random.Random
) -> str | None:
    """Replace the subject's entity (or the first entity) by another one."""
    from rag.claims import analyze

    [a] = analyze([claim])
    subject = a.subjects[0] if a.subjects else ""
    names = [e for e in a.entities if not re.search(r"[A-Za-z]", e) and e in subject]
    if not names:
        return None
    target = names[0]
    pool = [e for e in article_entities if e not in claim and target not in e and e not in target]
    if not pool or rng.random() < 0.5:
        pool = [e for e in corpus if e not in claim and target not in e and e not in target]
    if not pool:
        return None
    new = rng.choice(pool)
    at = claim.index(target) + len(target)
    return claim[: claim.index(target)] + new + _particle(new, claim[at : at + 1]) + claim[at + 1 :]


_PAIRS = {
    "이": "가",
    "가": "이",
    "은": "는",
    "는": "은",
    "을": "를",
    "를": "을",
    "과": "와",
    "와": "과",
}


def _particle(word: str, particle: str) -> str:
    """``particle`` (the character after the replaced name) in the form that fits ``word``."""
    if particle not in _PAIRS:
        return particle
    coda = (ord(word[-1]) - 0xAC00) % 28 != 0 if "가" <= word[-1] <= "힣" else False
    consonant_form = particle if particle in "이은을과" else _PAIRS[particle]
    return consonant_form if coda else _PAIRS[consonant_form]


def negate(claim: str) -> str | None:
    """Negate the last predicate with Kiwi ("증가했다" -> "증가하지 않았다")."""
    from rag.korean import kiwi

    tokens = kiwi().tokenize(claim)
    if any(t.tag in {"VX", "VCN"} and t.form in {"않", "못하", "아니"} for t in tokens):
        return None
    stems = [i for i, t in enumerate(tokens) if t.tag.startswith(("VV", "VA", "XSV", "XSA"))]
    if not stems:
        return None
    negation = [("지", "EC"), ("않", "VX"), ("었", "EP"), ("다", "EF"), (".", "SF")]
    return kiwi().join([*tokens[: stems[-1] + 1], *negation])


_FLIPS = [
    ("증가", "감소"),
    ("늘었", "줄었"),
    ("늘어났", "줄어들었"),
    ("상승", "하락"),
    ("확대", "축소"),
]


def reverse_direction(claim: str) -> str | None:
    """Swap "A에서 B로" / "from A to B", or flip a verb of change (증가 <-> 감소)."""
    from rag.quantities import quantities

    qs = quantities(claim)
    for a, b in itertools.pairwise(qs):
        between = claim[a.end : b.start]
        if re.match(r"^\s*(?:에서|부터)", between) and re.match(
            r"\s*(?:으로|로|까지)", claim[b.end :]
        ):
            return claim[: a.start] + b.text + between + a.text + claim[b.end :]
    for up, down in _FLIPS:
        if up in claim:
            return claim.replace(up, down, 1)
        if down in claim:
            return claim.replace(down, up, 1)
    return None


# ---------------------------------------------------------------------------- generation


def generate(rng: random.Random) -> list[dict]:
    """Every record: a claim, its cited passage, whether it is true, how it was made."""
    from rag.claims import analyze

    articles = load_articles()
    seeds = [a for a in articles if a["split"] == "seed"]
    wiki = [a for a in articles if a["split"] != "seed"]
    chosen = seeds + sorted(rng.sample(wiki, ARTICLES), key=lambda a: a["id"])
    corpus_entities: list[str] = []
    prepared = []
    for art in chosen:
        passages = passages_of(art["text"])
        sentences = [(k, s) for k, (_, p) in enumerate(passages) for s in p if usable(s)]
        picked = rng.sample(
            sentences, min(len(sentences), 8 if art["split"] == "seed" else PER_ARTICLE)
        )
        # Changes ("증가", "A에서 B로") are rarer than other facts: take one when there is one.
        changing = [x for x in sentences if x not in picked and reverse_direction(x[1])]
        if changing:
            picked.append(rng.choice(changing))
        entities = (
            [e for a in analyze([s for _, s in sentences]) for e in a.entities] if sentences else []
        )
        entities = [e for e in dict.fromkeys(entities) if not re.search(r"[A-Za-z]", e)]
        corpus_entities += entities
        prepared.append((art, passages, picked, entities))
    corpus_entities = sorted(set(corpus_entities))
    records = []
    for art, passages, picked, entities in prepared:
        for k, sentence in picked:
            forms = [("verbatim", sentence)]
            forms += [
                (n, f)
                for n, f in (
                    ("clause", shorten(sentence)),
                    ("reordered", reorder(sentence, rng)),
                    ("reworded", reword(sentence)),
                )
                if f
            ]
            kind, claim = rng.choice(forms[1:] or forms)
            base = {
                "split": art["split"],
                "article": art["id"],
                "title": art["title"],
                "url": art.get("url", ""),
                "passage": passages[k][0],
            }
            records.append({**base, "claim": claim, "true": True, "kind": kind})
            altered = {
                "number": swap_number(claim, art["text"], rng),
                "subject": swap_subject(claim, entities, corpus_entities, rng),
                "negation": negate(claim),
                "direction": reverse_direction(claim),
            }
            for name, text in altered.items():
                if text and text != claim:
                    records.append({**base, "claim": text, "true": False, "kind": name})
    seed_text = {a["id"]: a for a in seeds}
    for item in json.loads(ENGLISH.read_text(encoding="utf-8"))["claims"]:
        source = item["source"]
        art = next(a for a in seed_text.values() if source in a["text"])
        passage = next(p for p, _ in passages_of(art["text"]) if source in p)
        base = {"split": "english", "article": art["id"], "title": art["id"], "url": ""}
        base["passage"] = passage
        records.append({**base, "claim": item["claim"], "true": True, "kind": "english"})
        records += [
            {**base, "claim": a["claim"], "true": False, "kind": a["kind"]} for a in item["altered"]
        ]
    return records


# ------------------------------------------------------------------------------- scoring


def score(records: list[dict], embedder_spec: str, errors: int) -> dict:
    from rag.backends import get_embedder
    from rag.config import embedder_spec as resolve
    from rag.support import Evidence
    from rag.templates import render

    embedder = get_embedder(resolve(embedder_spec))
    results: dict[str, Counter] = defaultdict(Counter)
    wrong = []
    judged: list[str] = []  # prompts a judge would be sent (claims supported by meaning only)
    started = time.perf_counter()
    for r in records:
        verdict = Evidence(embedder, [r["passage"]]).check(r["claim"], [1])
        ok = verdict.supported == r["true"]
        group = results[r["split"]]
        group[("true" if r["true"] else "altered", "n")] += 1
        group[("true" if r["true"] else "altered", "ok")] += ok
        group[(r["kind"], "n")] += 1
        group[(r["kind"], "ok")] += ok
        if not ok:
            wrong.append((r, verdict))
        if verdict.reason == "semantic":
            judged.append(render("judge", claim=r["claim"], window=verdict.window))
    seconds = time.perf_counter() - started
    summary = {}
    for split, c in sorted(results.items()):
        kinds = sorted({k for k, _ in c})
        summary[split] = {
            k: {"n": c[(k, "n")], "correct": round(c[(k, "ok")] / c[(k, "n")], 3)} for k in kinds
        }
        tp = c[("true", "ok")]
        fp = c[("altered", "n")] - c[("altered", "ok")]
        summary[split]["precision"] = round(tp / (tp + fp), 3) if tp + fp else None
    for r, v in wrong[:errors]:
        print(
            f"[{r['split']}/{r['kind']}/{'T' if r['true'] else 'F'}] "
            f"{v.reason} {v.score:.2f}: {r['claim']}",
            file=sys.stderr,
        )
    summary["embedder"] = embedder.spec
    summary["seconds_per_claim"] = round(seconds / max(1, len(records)), 4)
    summary["judge"] = {
        "share_of_claims_asked": round(len(judged) / max(1, len(records)), 3),
        "prompt_chars_mean": round(sum(map(len, judged)) / max(1, len(judged))),
        "prompt_tokens_mean_e5": round(
            sum(map(embedder.count_tokens, judged)) / max(1, len(judged))
        ),
    }
    return summary


def gated(summary: dict) -> dict[str, tuple[float, str, str]]:
    """Each split's verified share of true claims and rejected share of altered ones, with a
    tolerance of two claims (one in the small splits): a CPU may flip a verdict that sits at
    a threshold."""
    out = {}
    for split in SPLITS:
        for kind in ("true", "altered"):
            n = summary[split][kind]["n"]
            claims = 2 if n > 100 else 1
            why = f"{claims} of its {n} {kind} claims is {claims / n:.4f}"
            out[f"{split}_{kind}"] = (round(claims / n + 0.0005, 3), "higher", why)
    return out


def write(path: Path, records: list[dict]) -> None:
    """A header, each cited passage once (with its article), then the claims."""
    ids: dict[str, str] = {}
    with path.open("w", encoding="utf-8") as f:
        f.write(json.dumps({"licence": LICENCE, "seed": SEED}, ensure_ascii=False) + "\n")
        for r in records:
            if r["passage"] not in ids:
                ids[r["passage"]] = pid = f"p{len(ids)}"
                keep = {k: r[k] for k in ("article", "title", "url")}
                row = {"passage_id": pid, **keep, "text": r["passage"]}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        for r in records:
            claim = {k: r[k] for k in ("split", "kind", "true", "claim")}
            row = {"passage_id": ids[r["passage"]], **claim}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def read(path: Path) -> list[dict]:
    """The records `write` wrote, each with its passage's text again."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    passages = {r["passage_id"]: r for r in rows if "text" in r}
    return [{**r, "passage": passages[r["passage_id"]]["text"]} for r in rows if "claim" in r]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generate", action="store_true", help=f"rebuild {OUT.name}")
    parser.add_argument("--data", type=Path, default=OUT)
    parser.add_argument("--embedder", default="auto")
    parser.add_argument("--errors", type=int, default=0, help="print this many wrong verdicts")
    parser.add_argument("--gate", action="store_true", help="exit 1 on a regression")
    parser.add_argument("--update-gate", action="store_true", help="record this run's numbers")
    args = parser.parse_args()
    if args.generate:
        records = generate(random.Random(SEED))
        write(args.data, records)
        counts = Counter((r["split"], r["true"]) for r in records)
        print(f"wrote {len(records)} claims to {args.data}: {dict(counts)}", file=sys.stderr)
    records = read(args.data)
    summary = score(records, args.embedder, args.errors)
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    if args.gate or args.update_gate:
        now = {
            f"{split}_{kind}": summary[split][kind]["correct"]
            for split in SPLITS
            for kind in ("true", "altered")
        }
        settings = {"claims": len(records), "embedder": summary["embedder"]}
        if args.update_gate:
            gate.update("claims", now, settings, gated(summary))
        else:
            sys.exit(gate.check("claims", now, settings))


if __name__ == "__main__":
    main()
