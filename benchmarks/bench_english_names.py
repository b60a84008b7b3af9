"""English queries naming a Korean person, over the Korean Wikinews articles: retrieval.

A reporter asks "What happened to Lee Gwang-jae?" of Korean articles that write 이광재. The
dense model reads a romanised Korean name poorly, and BM25 has no Latin word to match; the
index's own words spelt like the name (`rag.names.Spellings`) give BM25 the Hangul one.

The queries (`evals/english_names.jsonl`, made with ``--generate``): each person Kiwi tags
in the opening of a Wikinews article (a three-syllable proper noun with a common surname)
that 1 to 5 articles name and at least one names with a title (의원, 대통령, 씨, ...),
romanised the way English news writes Korean names: the family name as commonly spelt (Lee,
Park, Choi), the given name in Revised Romanization, hyphenated ("Lee Gwang-jae"; needs
``pip install korean-romanizer``). Each person is asked in two of four forms (the bare name,
"Who is …?", "What happened to …?", "What did … say?"); the gold documents are the
articles that write the name. People alternate between the tuning and the held-out split,
by name.

Countries, their peoples and cities are not spelt but translated (Japan: 일본), from CLDR
(`rag.places`); ``--places`` measures that instead: "What happened in X?" for each country or
city CLDR names that 1 to 20 of the articles write in Korean (a hit: an article that does),
and "What did the X government say?" for each people (Polish, Japanese).

    python benchmarks/bench_english_names.py --index /tmp/rag-bench-wikinews  # builds it
    python benchmarks/bench_english_names.py --generate                       # the queries
    python benchmarks/bench_english_names.py --places
    python benchmarks/bench_english_names.py --bodies
    python benchmarks/bench_english_names.py --kinds

Korea's public bodies are translated too (the Ministry of Unification: 통일부, from the table of
`rag.institutions`); ``--bodies`` asks "What did the X say?" for each body that 1 to 20 of the
articles name (a hit: an article that does), with and without that table. ``--kinds`` asks
whether a refusal-gate window gives a place named with a one-syllable kind (Boryeong Lake:
보령호) by its English name, and not by the same head with another kind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from pathlib import Path
from unittest import mock

from rag import Index, config, institutions, names, retrieve
from rag.kinds import korean_name
from rag.korean import tagged
from rag.metrics import doc_ranking, retrieval_metrics

ROOT = Path(__file__).resolve().parent.parent
WIKINEWS = Path("/work/shared/data/kowikinews/articles.jsonl")
OUT = ROOT / "evals" / "english_names.jsonl"
FORMS = ("{}", "Who is {}?", "What happened to {}?", "What did {} say?")
# Family names as English news spells them (Revised Romanization would write I, Bak, Gim).
FAMILY = dict(
    pair.split(":")
    for pair in (
        "강:Kang 고:Ko 곽:Kwak 구:Koo 권:Kwon 김:Kim 나:Na 남:Nam 노:Roh 도:Do 류:Ryu 문:Moon "
        "민:Min 박:Park 배:Bae 백:Baek 서:Seo 성:Sung 손:Son 송:Song 신:Shin 심:Shim 안:Ahn "
        "양:Yang 엄:Eom 오:Oh 우:Woo 원:Won 유:Yoo 윤:Yoon 이:Lee 임:Lim 장:Jang 전:Jeon "
        "정:Jung 조:Cho 주:Joo 지:Ji 진:Jin 차:Cha 채:Chae 천:Cheon 최:Choi 표:Pyo 하:Ha "
        "한:Han 허:Heo 현:Hyun 홍:Hong 황:Hwang"
    ).split()
)
TITLES = (
    "씨|대통령|의원|장관|총리|대표|회장|부회장|위원장|선수|시장|지사|감독|교수|후보|판사|검사|"
    "변호사|대변인|원내대표|최고위원|위원|총장|사장|작가|목사|신부|이사장|열사|장군"
)
OPENING = 600  # characters of an article's text searched for its people


def generate(data: Path, out: Path) -> int:
    from korean_romanizer.romanizer import Romanizer

    rows = [json.loads(line) for line in data.open(encoding="utf-8")]
    texts = {r["id"]: f"{r['title']} {r['text']}" for r in rows}
    openings = tagged([f"{r['title']} {r['text'][:OPENING]}" for r in rows])
    found = {t.form for tokens in openings for t in tokens if t.tag == "NNP"}
    people = {}
    for name in sorted(n for n in found if korean_name(n) and n[0] in FAMILY):
        docs = [i for i, text in texts.items() if name in text]
        titled = re.compile(rf"{name}\s?[가-힣]{{0,6}}?(?:{TITLES})(?![가-힣])")
        if 1 <= len(docs) <= 5 and any(titled.search(texts[i]) for i in docs):
            people[name] = docs
    items = []
    for i, (name, docs) in enumerate(sorted(people.items())):
        given = "-".join(Romanizer(c).romanize() for c in name[1:]).capitalize()
        english = f"{FAMILY[name[0]]} {given}"
        for form in (FORMS[i % 4], FORMS[(i + 2) % 4]):
            items.append(
                {
                    "query": form.format(english),
                    "name": name,
                    "docs": docs,
                    "split": "tune" if i % 2 == 0 else "held",
                }
            )
    out.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in items), "utf-8")
    return len(items)


def place_queries(data: Path) -> list[dict]:
    """A query for each CLDR country, people or city name whose Korean name 1 to 20 of the
    articles write; the gold documents are those articles. No split: nothing is tuned here."""
    from rag.places import _table, of_people

    texts = {}
    for line in data.open(encoding="utf-8"):
        r = json.loads(line)
        texts[r["id"]] = "".join(f"{r['title']} {r['text']}".split())
    items = []
    for english, koreans in sorted(_table()[0].items()):
        forms = ["".join(k.split()) for k in koreans]
        docs = [i for i, text in texts.items() if any(f in text for f in forms)]
        if not 1 <= len(docs) <= 20 or not english.replace(" ", "").isalpha():
            continue
        people = of_people(english)
        name = english.title()
        query = f"What did the {name} government say?" if people else f"What happened in {name}?"
        items.append({"query": query, "name": koreans[0], "docs": docs, "split": "all"})
    return items


def body_queries(data: Path) -> list[dict]:
    """A query for each Korean public body of `rag.institutions` that 1 to 20 of the
    articles name by one of its Korean names, asked by its first English name; the gold
    documents are those articles. No split: the table is not tuned."""
    from rag.institutions import _BODIES

    texts = {}
    for line in data.open(encoding="utf-8"):
        r = json.loads(line)
        texts[r["id"]] = "".join(f"{r['title']} {r['text']}".split())
    items = []
    for english, koreans in _BODIES:
        forms = [k for k in koreans if len(k) >= 3]  # 국회 and 헌재 are inside other words
        docs = [i for i, text in texts.items() if any(f in text for f in forms)]
        if 1 <= len(docs) <= 20:
            query = f"What did the {english[0]} say?"
            items.append({"query": query, "name": koreans[0], "docs": docs, "split": "all"})
    return items


# Korean places named with a one-syllable kind (역, 산, 강, 호, 항, 해, 도), each as English
# writes it, that the Wikinews articles name; picked by hand from the proper and common nouns
# so ending, leaving out people (박병호), ships (세월호) and companies (공사).
KIND_NAMES = {
    "광명역": "Gwangmyeong Station", "구의역": "Guui Station", "금강산": "Mount Geumgang",
    "대치역": "Daechi Station", "발산역": "Balsan Station", "보령호": "Boryeong Lake",
    "북악산": "Bugak Mountain", "사당역": "Sadang Station", "삼각지역": "Samgakji Station",
    "상계역": "Sanggye Station", "서현역": "Seohyeon Station", "신이문역": "Sinimun Station",
    "용산역": "Yongsan Station", "주왕산": "Juwang Mountain", "태화강": "Taehwa River",
    "평택항": "Pyeongtaek Port", "한탄강": "Hantan River", "한강": "Han River",
    "서울역": "Seoul Station", "부산항": "Busan Port", "낙동강": "Nakdong River",
    "설악산": "Mount Seorak", "에게해": "Aegean Sea", "독도": "Dokdo Island",
}  # fmt: skip
_SIBLING = {"Station": "Mountain", "Mountain": "Station", "Lake": "River", "River": "Lake",
            "Port": "Station", "Sea": "Lake", "Island": "Mountain", "Mount": "River"}  # fmt: skip


def kind_names(data: Path) -> None:
    """For each of `KIND_NAMES` in the first sentence of the articles that writes it, whether
    `names.match_names` gives it for its English name, and whether it takes the same head
    with another kind (Boryeong River for 보령호), which it must not."""
    from rag.korean import passage_sentences

    first: dict[str, str] = {}
    for line in data.open(encoding="utf-8"):
        text = json.loads(line)["text"]
        for a, b in passage_sentences(text):
            for korean in (k for k in KIND_NAMES if k in text[a:b]):
                first.setdefault(korean, text[a:b])
    given = taken = 0
    for korean, sentence in sorted(first.items()):
        english = KIND_NAMES[korean]
        words = english.split()
        kind = words[0] if words[0] == "Mount" else words[-1]
        head = " ".join(w for w in words if w != kind)
        sibling = f"{head} {_SIBLING[kind]}"
        tokens = tagged([sentence])[0]
        given += bool(names.match_names([english], tokens, sentence)[0])
        taken += bool(names.match_names([sibling], tokens, sentence)[0])
    print(f"{len(first)} names: given {given}, a sibling kind taken {taken}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generate", action="store_true", help=f"rebuild {OUT.name}")
    parser.add_argument("--data", type=Path, default=WIKINEWS)
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-bench-wikinews"))
    parser.add_argument("--embedder", default="auto", help="for a new index")
    parser.add_argument("--places", action="store_true", help="countries, peoples and cities")
    parser.add_argument("--bodies", action="store_true", help="Korean public bodies")
    parser.add_argument("--kinds", action="store_true", help="places named with a kind (서울역)")
    args = parser.parse_args()
    if args.kinds:
        kind_names(args.data)
        return
    if args.generate:
        print(f"wrote {generate(args.data, OUT)} queries to {OUT}")
        return
    if args.places:
        items = place_queries(args.data)
    elif args.bodies:
        items = body_queries(args.data)
    else:
        items = [json.loads(line) for line in OUT.open(encoding="utf-8")]
    if args.index.exists():
        index = Index.open(args.index)
    else:
        index = Index.create(args.index, embedder=config.embedder_spec(args.embedder, build=True))
        print(f"indexing {args.data} into {args.index}", file=sys.stderr, flush=True)
        index.add([args.data])
    without = mock.patch.object(retrieve, "english_names", lambda bm25, query: [])
    modes = {"dense only": ({"fusion": "dense"}, None), "hybrid, no spelling": ({}, without)}
    if args.places:  # as before rag.places: the names spelt by sound
        modes["hybrid, by sound"] = ({}, mock.patch.object(names, "korean_names", _none))
    if args.bodies:  # as before rag.institutions: the names spelt by sound, word by word
        no_table = contextlib.ExitStack()
        no_table.enter_context(mock.patch.object(institutions, "korean_names", _none))
        no_table.enter_context(mock.patch.object(institutions, "find", lambda text: []))
        modes["hybrid, no table"] = ({}, no_table)
    modes["hybrid (default)"] = ({}, None)
    people = len({x["name"] for x in items})
    what = "places" if args.places else "bodies" if args.bodies else "people"
    print(f"{len(items)} queries, {people} {what}; a hit: an article naming them")
    print(
        f"{'mode':<22}{'split':<7}" + "".join(f"{c:>9}" for c in ("hit@1", "hit@5", "MRR@10", "ms"))
    )
    for name, (options, patch) in modes.items():
        for split in ("all",) if args.places or args.bodies else ("tune", "held"):
            chosen = [x for x in items if x["split"] == split]
            started = time.perf_counter()
            with patch or contextlib.nullcontext():
                rankings = [
                    doc_ranking(h.doc_id for h in index.search(x["query"], k=10, **options))
                    for x in chosen
                ]
            ms = 1000 * (time.perf_counter() - started) / len(chosen)
            gold = [set(x["docs"]) for x in chosen]
            hits = [
                [bool(set(r[:k]) & g) for r, g in zip(rankings, gold, strict=True)] for k in (1, 5)
            ]
            row = [sum(h) / len(h) for h in hits] + [retrieval_metrics(rankings, gold)["MRR@10"]]
            print(f"{name:<22}{split:<7}" + "".join(f"{v:>9.3f}" for v in row) + f"{ms:>9.1f}")


def _none(name: str) -> tuple[str, ...]:
    return ()


if __name__ == "__main__":
    main()
