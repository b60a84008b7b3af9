"""Indexing on Ray: 1 node vs 2 nodes, with per-stage timings (docs/scale-out.md).

Indexes the first N KorQuAD 1.0 dev paragraphs (JSONL files of 10 records, like an archive of
daily files) locally and then on Ray clusters of 1 and 2 nodes of one CPU each, started here on
127.0.0.1 through Ray's API. For each run: wall seconds per stage (from the progress events)
and, for the cluster passes, the CPU seconds the workers spent computing, which is what the
expected curve in docs/scale-out.md is built from. Checks that every run wrote the same chunks.

    python benchmarks/bench_ray.py                     # 300 paragraphs, nodes 1 and 2
    python benchmarks/bench_ray.py --paragraphs 100 --nodes 2 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_korquad import DATA, load

from rag import Index

STAGES = ("cluster", "read", "chunk", "embed", "write")


def write_inputs(folder: Path, paragraphs: int, per_file: int = 10) -> None:
    records = load(DATA)[0][:paragraphs]
    folder.mkdir(parents=True)
    for start in range(0, len(records), per_file):
        lines = "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in records[start : start + per_file]
        )
        (folder / f"part-{start:04d}.jsonl").write_text(lines, encoding="utf-8")


class Busy(logging.Handler):
    """Collects the per-pass lines `rag.distributed` logs: items, wall and CPU seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.stages: dict[str, dict[str, float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("ray %s:"):
            stage, items, wall, cpu = record.args  # type: ignore[misc]
            self.stages[stage] = {"items": items, "wall": wall, "cpu": cpu}


def run(folder: Path, target: Path, ray: str | None) -> dict[str, Any]:
    started = time.perf_counter()
    cpu_started = time.process_time()
    first: dict[str, float] = {}
    last: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter() - started
        first.setdefault(stage, now)
        last[stage] = now

    index = Index.create(target, embedder="onnx-int8")
    busy = Busy()
    logging.getLogger("rag.distributed").addHandler(busy)
    logging.getLogger("rag.distributed").setLevel(logging.INFO)
    try:
        report = index.add([folder], progress, ray=ray)
    finally:
        logging.getLogger("rag.distributed").removeHandler(busy)
    total = time.perf_counter() - started
    driver_cpu = time.process_time() - cpu_started
    load = os.getloadavg()[0]  # other processes share the cores: report how busy they were
    # A stage runs from its first progress event to the first event of the next stage.
    order = [s for s in STAGES if s in first]
    stages = {}
    for s, nxt in zip(order, [*order[1:], None], strict=True):
        end = first[nxt] if nxt else last[s]
        stages[s] = round(end - first[s], 2)
    chunks = [
        (c.chunk_id, c.text, c.terms) for c in index._snap.records.all_chunks()
    ]  # compared across runs
    return {
        "seconds": round(total, 2),
        "load": round(load, 1),
        "driver_cpu": round(driver_cpu, 2),
        "chunks": report.chunks_embedded,
        "chunks_per_s": round(report.chunks_embedded / total, 2),
        "stages": stages,
        "worker_cpu": {k: round(v["cpu"], 2) for k, v in busy.stages.items()},
        "_chunks": chunks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=300)
    parser.add_argument("--nodes", default="1,2", help="Comma-separated cluster sizes.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "token")  # explicit: token auth, a fresh token
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep 127.0.0.1
    from ray.cluster_utils import Cluster

    work = Path(tempfile.mkdtemp(prefix="rag-bench-ray-"))
    results: dict[str, Any] = {"paragraphs": args.paragraphs, "runs": {}}
    try:
        write_inputs(work / "in", args.paragraphs)
        results["runs"]["local"] = run(work / "in", work / "local", None)
        for nodes in [int(n) for n in args.nodes.split(",")]:
            cluster = Cluster(shutdown_at_exit=True)
            try:
                started = time.perf_counter()
                for _ in range(nodes):
                    cluster.add_node(
                        num_cpus=1,
                        object_store_memory=150 * 2**20,
                        node_ip_address="127.0.0.1",
                        include_dashboard=False,
                    )
                cluster.wait_for_nodes()
                up = time.perf_counter() - started
                result = run(work / "in", work / f"ray{nodes}", str(cluster.address))
                result["cluster_start"] = round(up, 2)
                results["runs"][f"{nodes} node{'s' if nodes > 1 else ''}"] = result
            finally:
                cluster.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reference = results["runs"]["local"]["_chunks"]
    for run_result in results["runs"].values():
        run_result["same_chunks"] = run_result.pop("_chunks") == reference
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.paragraphs} KorQuAD paragraphs, onnx-int8")
    header = f"{'run':<8} {'total s':>8} {'chunks/s':>8}  " + " ".join(f"{s:>8}" for s in STAGES)
    print(header)
    for name, r in results["runs"].items():
        cells = " ".join(f"{r['stages'].get(s, ''):>8}" for s in STAGES)
        print(
            f"{name:<8} {r['seconds']:>8} {r['chunks_per_s']:>8}  {cells}  "
            f"worker CPU {r['worker_cpu']}  load {r['load']}"
        )


if __name__ == "__main__":
    main()
