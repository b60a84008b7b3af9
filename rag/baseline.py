"""The baseline that gates CI: a committed JSON file holding, for each gated metric, its
value, how far it may move the wrong way (its tolerance) and why that tolerance; `compare`
lists every metric's verdict and the questions that stopped (or started) passing."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from .config import write_whole
from .errors import RagError
from .evaluate import CUTOFFS, EvalResult

# metric: (tolerance, why); every other metric (latency) is not gated.
GATES: dict[str, tuple[float, str]] = {
    **{
        f"{m}@{k}": (0.01, "deterministic ranking; one of the seed set's 99 answerable is 0.0101")
        for m in ("hit", "recall")
        for k in CUTOFFS
    },
    "mrr@10": (0.005, "one question falling from rank 1 to 2 moves it by 0.0051"),
    "ndcg@10": (0.003, "one question falling from rank 1 to 2 moves it by 0.0037"),
    "exact_match": (0.007, "one of 127 questions is 0.0079"),
    "f1": (0.005, "a mean of 127; one answer losing 2/3 of its F1 moves it by 0.0052"),
    "fact_coverage": (0.0035, "one question losing one of two facts moves it by 0.0039"),
    "citation_precision": (0.007, "one unverified citation in about 135 moves it by 0.0074"),
    "citation_recall": (0.01, "one of 99 gold documents uncited is 0.0101"),
    "invalid_markers": (0.0, "the offline answerer never writes one: any is a bug"),
    "refusal_accuracy": (0.03, "one of the 28 unanswerable questions is 0.036"),
    "false_refusal_rate": (0.01, "one of 99 answerable questions is 0.0101"),
    "pass_rate": (0.007, "one of 127 questions is 0.0079"),
    "answer_first": (0.01, "one of about 87 answered answerable questions is 0.0115"),
}
LOWER_IS_BETTER = frozenset({"invalid_markers", "false_refusal_rate"})
Verdict = Literal["ok", "better", "REGRESSED", "not gated"]


def fmt(value: float | None, digits: int = 3) -> str:
    """A metric's value as the reports print it (``null`` when it has none)."""
    return "null" if value is None else f"{value:.{digits}f}"


class Gate(BaseModel):
    """One gated metric of the baseline."""

    value: float | None
    tolerance: float
    better: Literal["higher", "lower"]
    why: str


class Baseline(BaseModel):
    """The committed reference an evaluation is compared with."""

    about: str = ""
    gold: str
    gold_digest: str
    config: dict[str, Any]
    created: str
    metrics: dict[str, Gate]
    passed: list[str]


class Check(BaseModel):
    """A gated metric now and in the baseline, and the verdict."""

    metric: str
    baseline: float | None
    now: float | None
    tolerance: float
    better: Literal["higher", "lower"]
    verdict: Verdict

    def line(self) -> str:
        """One line saying how this metric moved."""
        way = "drop" if self.better == "higher" else "rise"
        return (
            f"{self.metric} {self.verdict.lower()}: {fmt(self.baseline, 4)} -> "
            f"{fmt(self.now, 4)} (may {way} by at most {self.tolerance:g})"
        )


class Comparison(BaseModel):
    """Every gated metric's verdict and which questions changed from pass to fail."""

    checks: list[Check]
    now_failing: list[str]
    now_passing: list[str]
    baseline_config: dict[str, Any]
    config: dict[str, Any]

    @property
    def regressions(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "REGRESSED"]

    def changes(self) -> list[str]:
        """What changed, in words: configuration, questions, improvements."""
        lines = []
        differ = [k for k in self.config if self.baseline_config.get(k) != self.config[k]]
        for key in differ:
            lines.append(
                f"{key}: {self.baseline_config.get(key)} in the baseline, now {self.config[key]}"
            )
        if self.now_failing:
            lines.append(f"now failing (passed in the baseline): {', '.join(self.now_failing)}")
        if self.now_passing:
            lines.append(f"now passing (failed in the baseline): {', '.join(self.now_passing)}")
        better = [c.metric for c in self.checks if c.verdict == "better"]
        if better:
            lines.append(
                f"better than the baseline beyond tolerance: {', '.join(better)} "
                "(record it with --update-baseline)"
            )
        return lines


def read_baseline(path: str | Path) -> Baseline:
    """Read a baseline file.

    Raises:
        RagError: It is missing or not a baseline.
    """
    if Path(path).is_dir():
        raise RagError(f"{path} is not a baseline: a directory")
    try:
        # utf-8-sig: a BOM an editor wrote was refused, while gold files with one were read.
        return Baseline.model_validate_json(_read(Path(path)).decode("utf-8-sig"))
    except OSError as e:
        raise RagError(f"cannot read baseline {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise RagError(f"{path} is not a baseline: not UTF-8 text") from e
    except ValidationError as e:  # what is wrong, not "1 validation error for Baseline"
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise RagError(
            f"{path} is not a baseline: {where + ': ' if where else ''}{first['msg']}"
        ) from e


def _read(path: Path) -> bytes:
    """The file's bytes. A FIFO no process writes (a FIFO named as the baseline) reads as
    empty instead of waiting forever, as a plain open did; one being written (``--baseline
    <(git show main:evals/baseline.json)``) is read as the writer writes it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        return f.read()


def check_gold(baseline: Baseline, digest: str, path: str | Path) -> None:
    """Refuse to compare results on other gold questions than the baseline's.

    Raises:
        RagError: The gold questions differ from the baseline's.
    """
    if baseline.gold_digest != digest:
        raise RagError(
            f"baseline {path} was made on other gold questions ({baseline.gold}, "
            f"{baseline.gold_digest}); after changing the gold set, rerun with --update-baseline"
        )


def check_metric(metric: str, gate: Gate, value: float | None) -> Check:
    """``metric``'s ``value`` against its ``gate``, rounded to 4 decimals as stored (also
    the benchmark gates', benchmarks/gate.py)."""
    now = None if value is None else round(value, 4)
    fields = gate.model_dump(exclude={"value", "why"})
    return Check(metric=metric, baseline=gate.value, now=now, verdict=_verdict(gate, now), **fields)


def new_gate(
    value: float | None, tolerance: float, better: str, why: str, kept: Gate | None
) -> Gate:
    """A gate recording ``value``; the tolerance and reason of ``kept``, the gate it
    replaces, if any (a person may have edited them), else ``tolerance`` and ``why``."""
    return Gate(
        value=None if value is None else round(value, 4),
        tolerance=kept.tolerance if kept else tolerance,
        better="lower" if better == "lower" else "higher",
        why=kept.why if kept else why,
    )


def _verdict(gate: Gate, now: float | None) -> Verdict:
    """``now`` against ``gate``: a move the wrong way beyond the tolerance, or no value at
    all, is a regression."""
    if gate.value is None:
        return "not gated"
    if now is None:
        return "REGRESSED"
    gain = (now - gate.value) * (1 if gate.better == "higher" else -1)
    if gain < -gate.tolerance - 1e-9:
        return "REGRESSED"
    return "better" if gain > gate.tolerance + 1e-9 else "ok"


def _whole(result: EvalResult, what: str) -> None:
    """Refuse an interrupted run: its metrics cover only the questions asked before Ctrl-C."""
    if result.interrupted:
        raise RagError(
            f"cannot {what} an interrupted run ({result.scored} of {result.questions} "
            "questions); run the whole gold set"
        )


def compare(result: EvalResult, baseline: Baseline) -> Comparison:
    """Each gated metric against the baseline: a drop (a rise, for lower-is-better
    metrics) larger than its tolerance is a regression; a metric the run could not compute
    (null) regresses too. Values are compared rounded to 4 decimals, as stored.

    Raises:
        RagError: ``result`` is of an interrupted run.
    """
    _whole(result, "compare with a baseline")
    checks = [
        check_metric(name, gate, result.metrics.get(name))
        for name, gate in baseline.metrics.items()
    ]
    passed = {i.id for i in result.items if i.passed}
    ids = [i.id for i in result.items]
    return Comparison(
        checks=checks,
        now_failing=[i for i in ids if i in baseline.passed and i not in passed],
        now_passing=[i for i in ids if i not in baseline.passed and i in passed],
        baseline_config=baseline.config,
        config=result.config,
    )


def comparison_table(comparison: Comparison, markdown: bool = False) -> list[str]:
    """metric / baseline / now / tolerance / verdict, as text or a markdown table."""
    rows = [
        (c.metric, fmt(c.baseline, 4), fmt(c.now, 4), f"{c.tolerance:g}", c.verdict)
        for c in comparison.checks
    ]
    head = ("metric", "baseline", "now", "tolerance", "verdict")
    if markdown:
        return ["| " + " | ".join(head) + " |", "| --- | ---: | ---: | ---: | --- |"] + [
            "| " + " | ".join(r) + " |" for r in rows
        ]
    return [f"{a:<22}{b:>10}{c:>10}{d:>11}  {e}" for a, b, c, d, e in [head, *rows]]


def make_baseline(result: EvalResult, previous: Baseline | None = None) -> Baseline:
    """A baseline from ``result``; tolerances and reasons are kept from ``previous`` (a
    person may have edited them), else taken from `GATES`.

    Raises:
        RagError: ``result`` is of an interrupted run, or of one where answers failed (an
            LLM down or timing out: a baseline of zeros would pass any later run).
    """
    _whole(result, "make a baseline from")
    failed = sum(i.error is not None for i in result.items)
    if failed:
        raise RagError(
            f"cannot make a baseline from a run where {failed} of {result.questions} answers "
            "failed; fix what failed and run it again"
        )
    metrics = {
        name: new_gate(
            result.metrics.get(name),
            tolerance,
            "lower" if name in LOWER_IS_BETTER else "higher",
            why,
            previous.metrics.get(name) if previous else None,
        )
        for name, (tolerance, why) in GATES.items()
    }
    return Baseline(
        about="rag eval fails (exit 1) when a metric moves the wrong way by more than its "
        "tolerance; rewrite with: rag eval GOLD --baseline THIS_FILE --update-baseline",
        gold=result.gold,
        gold_digest=result.gold_digest,
        config=result.config,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        metrics=metrics,
        passed=[i.id for i in result.items if i.passed],
    )


def check_writable(path: str | Path) -> None:
    """Raise `RagError` unless a baseline can be written at ``path`` (its folder exists and
    may be written): checked before the evaluation, whose results would be lost after it.
    A symbolic link is written through (`rag.config.write_whole`), so the folder checked is
    its target's: a link into a read-only place passed, and the write failed after the run."""
    link = Path(path).is_symlink()
    folder = Path(os.path.realpath(path) if link else path).parent
    if not folder.is_dir():
        raise RagError(f"cannot write the baseline {path}: no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise RagError(f"cannot write the baseline {path}: {folder} is not writable")


def write_baseline(baseline: Baseline, path: str | Path) -> None:
    """Write the baseline as readable JSON, whole or not at all (a killed write leaves the
    previous file)."""
    text = json.dumps(baseline.model_dump(mode="json"), ensure_ascii=False, indent=2)
    write_whole(Path(path), text + "\n")
