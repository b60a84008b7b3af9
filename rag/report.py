"""What an evaluation found, for people: a summary table, a markdown report with a recall@k
plot, and the comparison with a committed baseline that gates CI.

The baseline is a JSON file holding, for each gated metric, its value, how far it may move
the wrong way (its tolerance) and why that tolerance; `compare` lists every metric's verdict
and the questions that stopped (or started) passing.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from .errors import RagError
from .evaluate import CUTOFFS, EvalResult, QuestionResult, recall_at

# metric: (what it is computed over, definition)
DEFINITIONS: dict[str, tuple[str, str]] = {
    **{
        f"hit@{k}": ("answerable questions with gold docs", f"a gold document in the top {k}")
        for k in CUTOFFS
    },
    **{
        f"recall@{k}": ("answerable questions with gold docs", f"share of gold docs in the top {k}")
        for k in CUTOFFS
    },
    "mrr@10": ("answerable questions with gold docs", "1 / rank of the first gold document"),
    "ndcg@10": ("answerable questions with gold docs", "nDCG with binary gains"),
    "exact_match": ("unanswerable questions and those with a gold answer", "same morphemes"),
    "f1": ("unanswerable questions and those with a gold answer", "morpheme-overlap F1"),
    "fact_coverage": ("unanswerable questions and those with facts", "share of facts found"),
    "citation_precision": ("citations of answered questions", "share verified"),
    "citation_recall": ("gold docs of answerable questions", "share cited"),
    "invalid_markers": ("answers", "total [n] markers naming no passage (a count)"),
    "errors": ("answers", "questions whose answer failed with an LLM error (a count)"),
    "refusal_accuracy": ("unanswerable questions", "share refused"),
    "false_refusal_rate": ("answerable questions", "share refused"),
    "pass_rate": ("questions", "share passing (see below)"),
    "answer_first": ("answered answerable questions with facts", "first sentence holds a fact"),
    **{
        f"latency_{stage}_{p}": ("answers", f"{p} of the {stage} time, seconds")
        for stage in ("retrieve", "answer", "total")
        for p in ("p50", "p95")
    },
}
NOTES = [
    "Retrieval: binary relevance at the document level; a document counts once, at the rank "
    "of its best chunk.",
    "EM/F1 compare Kiwi morphemes without particles, endings, the copula and punctuation, "
    "numbers without thousands separators.",
    "Refusals are scored: on an unanswerable question a refusal counts as EM, F1 and fact "
    "coverage 1 (its citations are not counted); on an answerable one as 0.",
    "A question passes when it is unanswerable and refused, or answerable, answered, covers "
    "every fact, and is verified: at least one citation, every citation verified, no "
    "unsupported sentence. A question whose answer failed (an LLM error) fails.",
    "Latency: seconds per question, p50/p95 by linear interpolation; retrieve is the one "
    "search per question (50 deep; the answerer sees its first k hits). Not gated: it "
    "depends on the machine.",
    "null: the metric's denominator is empty for this gold set.",
]

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


def _fmt(value: float | None, digits: int = 3) -> str:
    return "null" if value is None else f"{value:.{digits}f}"


def _value(name: str, value: float | None) -> str:
    return _fmt(value, 0 if name in ("invalid_markers", "errors") else 3)


def _describe(result: EvalResult) -> str:
    c = result.config
    fusion = c["fusion"] + (f" (bm25 weight {c['bm25_weight']})" if c["fusion"] == "convex" else "")
    return (
        f"k={c['k']}, fusion {fusion}, answerer {c['answerer']}, embedder {c['embedder']}, "
        f"{c['documents']} documents / {c['chunks']} chunks"
    )


def summary_lines(result: EvalResult) -> list[str]:
    """The metrics as an aligned plain-text table, with what each is computed over."""
    lines = [
        f"Evaluated {result.questions} questions from {result.gold or 'gold items'} "
        f"in {result.seconds:.1f} s",
        f"  {_describe(result)}",
        "",
        f"{'metric':<22}{'value':>8}{'n':>6}  over",
    ]
    for name, value in result.metrics.items():
        over = DEFINITIONS.get(name, ("", ""))[0]
        lines.append(f"{name:<22}{_value(name, value):>8}{result.denominators[name]:>6}  {over}")
    failed = [i.id for i in result.items if not i.passed]
    lines += ["", f"Failed {len(failed)} of {result.questions}: {', '.join(failed) or 'none'}"]
    return lines


# -- markdown report and plot --------------------------------------------------------------


def _cell(text: str, width: int | None = None) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if width is None or len(flat) <= width else flat[: width - 1] + "…"


def _row(item: QuestionResult) -> str:
    cites = " ".join(
        f"[{c.n}] {c.doc_id}{'' if c.verified else ' (unverified)'}" for c in item.citations
    )
    facts = _fmt(item.facts, 2) + (
        f" (missing: {', '.join(item.missing_facts)})" if item.missing_facts else ""
    )
    cells = [
        item.id,
        _cell(item.question),
        _cell(item.answer, 120),
        _cell(cites) or "—",
        _fmt(item.em, 0),
        _fmt(item.f1, 2),
        _cell(facts),
        "yes" if item.refused else "no",
        "pass" if item.passed else "**fail**",
    ]
    return "| " + " | ".join(cells) + " |"


def recall_curve(result: EvalResult) -> list[tuple[int, float]]:
    """Mean recall@k for k = 1..10 over the answerable questions with gold documents."""
    ranked = [(i.ranking, set(i.gold_docs)) for i in result.items if i.answerable and i.gold_docs]
    if not ranked:
        return []
    return [(k, sum(recall_at(r, g, k) for r, g in ranked) / len(ranked)) for k in range(1, 11)]


def _plot_svg(curve: list[tuple[int, float]], path: Path) -> None:
    """A small dependency-free line chart."""
    w, h, left, top, right, bottom = 480, 300, 50, 30, 20, 40

    def px(k: int) -> float:
        return left + (k - 1) * (w - left - right) / 9

    def py(v: float) -> float:
        return top + (1 - v) * (h - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'font-family="sans-serif" font-size="11">',
        f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="13">recall@k</text>',
    ]
    for v in (0, 0.25, 0.5, 0.75, 1):
        parts.append(
            f'<line x1="{left}" x2="{w - right}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:g}</text>'
        )
    for k in range(1, 11):
        parts.append(f'<text x="{px(k):.1f}" y="{h - bottom + 16}" text-anchor="middle">{k}</text>')
    parts.append(f'<text x="{w / 2}" y="{h - 6}" text-anchor="middle">k (documents)</text>')
    parts.append(
        f'<text x="12" y="{h / 2}" text-anchor="middle" transform="rotate(-90 12 {h / 2})">'
        "mean recall@k</text>"
    )
    points = " ".join(f"{px(k):.1f},{py(v):.1f}" for k, v in curve)
    parts.append(f'<polyline points="{points}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    for k, v in curve:
        parts.append(f'<circle cx="{px(k):.1f}" cy="{py(v):.1f}" r="3" fill="#1f77b4">')
        parts.append(f"<title>recall@{k} = {v:.3f}</title></circle>")
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


def plot_recall(result: EvalResult, directory: Path) -> Path | None:
    """Write the recall@k curve as recall_at_k.png (matplotlib) or recall_at_k.svg."""
    curve = recall_curve(result)
    if not curve:
        return None
    try:
        from matplotlib.figure import Figure
    except ImportError:
        path = directory / "recall_at_k.svg"
        _plot_svg(curve, path)
        return path
    fig = Figure(figsize=(5, 3.2), layout="tight")
    ax = fig.subplots()
    ax.plot([k for k, _ in curve], [v for _, v in curve], marker="o")
    ax.set(xlabel="k (documents)", ylabel="mean recall@k", ylim=(0, 1.02), xticks=range(1, 11))
    ax.set_title("recall@k")
    ax.grid(alpha=0.3)
    path = directory / "recall_at_k.png"
    fig.savefig(path, dpi=100)
    return path


def write_report(
    result: EvalResult, directory: str | Path, comparison: Comparison | None = None
) -> Path:
    """Write ``directory``/report.md (metrics, notes, baseline comparison, one row per
    question) and the recall@k plot beside it; returns the report's path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    plot = plot_recall(result, out)
    md = [
        "# Evaluation report",
        "",
        f"- Gold: `{result.gold or 'gold items'}`, {result.questions} questions "
        f"({result.gold_digest})",
        f"- Configuration: {_describe(result)}",
        f"- Run: {result.seconds:.1f} s",
        "",
        "## Metrics",
        "",
        "| metric | value | n | over | definition |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for name, value in result.metrics.items():
        over, meaning = DEFINITIONS.get(name, ("", ""))
        size = result.denominators[name]
        md.append(f"| {name} | {_value(name, value)} | {size} | {over} | {meaning} |")
    md += ["", *[f"- {n}" for n in NOTES], ""]
    if plot:
        md += [f"![recall@k]({plot.name})", ""]
    if comparison:
        md += ["## Compared with the baseline", "", *comparison_table(comparison, markdown=True)]
        md += ["", *[f"- {line}" for line in comparison.changes()], ""]
    failed = [i.id for i in result.items if not i.passed]
    md += [
        "## Questions",
        "",
        f"Failed {len(failed)} of {result.questions}: {', '.join(failed) or 'none'}",
        "",
        "| id | question | answer | citations | EM | F1 | facts | refused | pass |",
        "| --- | --- | --- | --- | ---: | ---: | --- | --- | --- |",
        *[_row(i) for i in result.items],
    ]
    path = out / "report.md"
    path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return path


# -- baseline gate -------------------------------------------------------------------------


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
            f"{self.metric} {self.verdict.lower()}: {_fmt(self.baseline, 4)} -> "
            f"{_fmt(self.now, 4)} (may {way} by at most {self.tolerance:g})"
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
    try:
        return Baseline.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise RagError(f"cannot read baseline {path}: {e.strerror}") from e
    except ValidationError as e:
        raise RagError(f"{path} is not a baseline: {str(e).splitlines()[0]}") from e


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


def _verdict(gate: Gate, now: float | None) -> Verdict:
    if gate.value is None:
        return "not gated"
    if now is None:
        return "REGRESSED"
    gain = (now - gate.value) * (1 if gate.better == "higher" else -1)
    if gain < -gate.tolerance - 1e-9:
        return "REGRESSED"
    return "better" if gain > gate.tolerance + 1e-9 else "ok"


def compare(result: EvalResult, baseline: Baseline) -> Comparison:
    """Each gated metric against the baseline: a drop (a rise, for lower-is-better
    metrics) larger than its tolerance is a regression; a metric the run could not compute
    (null) regresses too. Values are compared rounded to 4 decimals, as stored."""
    checks = []
    for name, gate in baseline.metrics.items():
        value = result.metrics.get(name)
        now = None if value is None else round(value, 4)
        fields = gate.model_dump(exclude={"value", "why"})
        checks.append(
            Check(metric=name, baseline=gate.value, now=now, verdict=_verdict(gate, now), **fields)
        )
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
        (c.metric, _fmt(c.baseline, 4), _fmt(c.now, 4), f"{c.tolerance:g}", c.verdict)
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
    person may have edited them), else taken from `GATES`."""
    metrics = {}
    for name, (tolerance, why) in GATES.items():
        old = previous.metrics.get(name) if previous else None
        value = result.metrics.get(name)
        metrics[name] = Gate(
            value=None if value is None else round(value, 4),
            tolerance=old.tolerance if old else tolerance,
            better="lower" if name in LOWER_IS_BETTER else "higher",
            why=old.why if old else why,
        )
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


def write_baseline(baseline: Baseline, path: str | Path) -> None:
    """Write the baseline as readable JSON."""
    text = json.dumps(baseline.model_dump(mode="json"), ensure_ascii=False, indent=2)
    Path(path).write_text(text + "\n", encoding="utf-8")
