"""The CI gate on benchmark numbers: `evals/benchmark_gates.json` records, for each gated
benchmark, its settings and each gated metric's value, tolerance and reason, as
`evals/baseline.json` does for the seed eval (`rag.baseline`). A benchmark run with
``--gate`` prints every gated metric's verdict and exits 1 when one moved the wrong way by
more than its tolerance; ``--update-gate`` records the run instead (keeping the tolerances
and reasons a person may have edited).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rag.baseline import Gate, check_metric, new_gate
from rag.config import write_whole

GATES = Path(__file__).resolve().parents[1] / "evals" / "benchmark_gates.json"
ABOUT = (
    "benchmarks run with --gate exit 1 when a metric here moves the wrong way by more than its "
    "tolerance; rewrite a benchmark's entry with its --update-gate"
)


class Recorded(BaseModel):
    """One benchmark's entry: how it was run, when, and its gated metrics."""

    settings: dict[str, Any]
    created: str
    metrics: dict[str, Gate]


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"about": ABOUT}


def check(name: str, now: dict[str, float], settings: dict[str, Any], path: Path = GATES) -> int:
    """Print each gated metric of ``name`` against its record; 1 if one regressed, else 0."""
    entry = _read(path).get(name)
    if entry is None:
        print(f"error: {path} records no {name!r}; run with --update-gate", file=sys.stderr)
        return 1
    recorded = Recorded.model_validate(entry)
    for key in sorted(set(settings) | set(recorded.settings)):
        was, now_set = recorded.settings.get(key), settings.get(key)
        if now_set != was:
            print(f"note: {key} is {now_set!r}, recorded with {was!r}", file=sys.stderr)
    checks = [check_metric(m, gate, now.get(m)) for m, gate in recorded.metrics.items()]
    for c in checks:
        print(f"{name}: {c.line()}", file=sys.stderr)
    bad = [c.metric for c in checks if c.verdict == "REGRESSED"]
    if bad:
        print(f"error: {name} regressed: {', '.join(bad)}", file=sys.stderr)
        return 1
    print(f"{name}: every gated metric within its tolerance of {path.name}", file=sys.stderr)
    return 0


def update(
    name: str,
    now: dict[str, float],
    settings: dict[str, Any],
    gates: dict[str, tuple[float, str, str]],
    path: Path = GATES,
) -> None:
    """Record ``now`` as ``name``'s gated metrics; ``gates`` gives each one's (tolerance,
    'higher' or 'lower', why) unless the file already holds them."""
    data = _read(path)
    old = Recorded.model_validate(data[name]).metrics if name in data else {}
    metrics = {
        metric: new_gate(now.get(metric), tolerance, better, why, old.get(metric))
        for metric, (tolerance, better, why) in gates.items()
    }
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    data[name] = Recorded(settings=settings, created=created, metrics=metrics).model_dump()
    write_whole(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    print(f"recorded {name} in {path}", file=sys.stderr)
