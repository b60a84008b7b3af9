"""What an evaluation found, for people: a summary table and a markdown report with a
recall@k plot and the comparison with the baseline (`rag.baseline`)."""

from __future__ import annotations

import io
import os
from pathlib import Path

from .baseline import Comparison, comparison_table, fmt
from .config import write_whole
from .errors import RagError
from .evaluate import CUTOFFS, EvalResult, QuestionResult
from .metrics import recall_at

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
    "incomplete": (
        "answers",
        "answers cut short without an error: token limit, content filter, a loop (a count)",
    ),
    "refusal_accuracy": ("unanswerable questions", "share refused"),
    "false_refusal_rate": ("answerable questions", "share refused"),
    "pass_rate": ("questions", "share passing (see below)"),
    "answer_first": (
        "answered answerable questions with facts",
        "first sentence holds a fact (failed answers left out)",
    ),
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
    "unsupported sentence. A question whose answer failed (an LLM error) or was cut short "
    "(incomplete: the token limit, the content filter, a repetition loop) fails.",
    "Latency: seconds per question, p50/p95 by linear interpolation; retrieve is the one "
    "search per question (50 deep; the answerer sees its first k hits). Not gated: it "
    "depends on the machine.",
    "null: the metric's denominator is empty for this gold set.",
]


def _value(name: str, value: float | None) -> str:
    return fmt(value, 0 if name in ("invalid_markers", "errors", "incomplete") else 3)


def _describe(result: EvalResult) -> str:
    c = result.config
    fusion = c["fusion"] + (f" (bm25 weight {c['bm25_weight']})" if c["fusion"] == "convex" else "")
    return (
        f"k={c['k']}, fusion {fusion}, answerer {c['answerer']}, embedder {c['embedder']}, "
        f"{c['documents']} documents / {c['chunks']} chunks"
    )


def _evaluated(result: EvalResult) -> str:
    """How many questions were scored: all, or (interrupted) how many of how many."""
    if not result.interrupted:
        return f"{result.questions} questions"
    return f"{result.scored} of {result.questions} questions"


def interrupted_line(result: EvalResult) -> str | None:
    """What an interrupted run's metrics are over (``None`` for a whole run)."""
    if not result.interrupted:
        return None
    return (
        f"INTERRUPTED after {result.scored} of {result.questions} questions: the metrics "
        "cover only the questions answered before Ctrl-C"
    )


def summary_lines(result: EvalResult) -> list[str]:
    """The metrics as an aligned plain-text table, with what each is computed over."""
    stopped = interrupted_line(result)
    lines = [
        f"Evaluated {_evaluated(result)} from {result.gold or 'gold items'} "
        f"in {result.seconds:.1f} s",
        *([f"  {stopped}"] if stopped else []),
        f"  {_describe(result)}",
        "",
        f"{'metric':<22}{'value':>8}{'n':>6}  over",
    ]
    for name, value in result.metrics.items():
        over = DEFINITIONS.get(name, ("", ""))[0]
        lines.append(f"{name:<22}{_value(name, value):>8}{result.denominators[name]:>6}  {over}")
    failed = [i.id for i in result.items if not i.passed]
    lines += ["", f"Failed {len(failed)} of {result.scored}: {', '.join(failed) or 'none'}"]
    cut = [f"{i.id} ({i.stop_reason})" for i in result.items if i.cut_short]
    if cut:
        lines.append(f"Incomplete {len(cut)}: {', '.join(cut)}")
    return lines


# -- markdown report and plot --------------------------------------------------------------


def _cell(text: str, width: int | None = None) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if width is None or len(flat) <= width else flat[: width - 1] + "…"


def _row(item: QuestionResult) -> str:
    cites = " ".join(
        f"[{c.n}] {c.doc_id}{'' if c.verified else ' (unverified)'}" for c in item.citations
    )
    facts = fmt(item.facts, 2) + (
        f" (missing: {', '.join(item.missing_facts)})" if item.missing_facts else ""
    )
    answer = _cell(item.answer, 120)
    if item.cut_short:
        answer += f" *(incomplete: {item.stop_reason})*"
    cells = [
        item.id,
        _cell(item.question),
        answer,
        _cell(cites) or "—",
        fmt(item.em, 0),
        fmt(item.f1, 2),
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


def _svg(curve: list[tuple[int, float]]) -> str:
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
    return "\n".join(parts) + "\n"


def plot_recall(result: EvalResult, directory: Path) -> Path | None:
    """Write the recall@k curve as recall_at_k.png (matplotlib) or recall_at_k.svg (the name
    `plot_name` gives), whole or not at all."""
    name = plot_name(result)
    if name is None:
        return None
    curve = recall_curve(result)
    path = directory / name
    if name.endswith(".svg"):
        image: str | bytes = _svg(curve)
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5, 3.2), layout="tight")
        ax = fig.subplots()
        ax.plot([k for k, _ in curve], [v for _, v in curve], marker="o")
        ax.set(xlabel="k (documents)", ylabel="mean recall@k", ylim=(0, 1.02), xticks=range(1, 11))
        ax.set_title("recall@k")
        ax.grid(alpha=0.3)
        png = io.BytesIO()
        fig.savefig(png, dpi=100, format="png")
        image = png.getvalue()
    # Whole or not at all, as the report; a link in the plot's place is replaced, not written
    # through (the SVG overwrote the file a link pointed to).
    write_whole(path, image, through_links=False)
    return path


def plot_name(result: EvalResult) -> str | None:
    """The plot's file name: recall_at_k.png with matplotlib, else recall_at_k.svg; ``None``
    when there is no curve to plot."""
    if not recall_curve(result):
        return None
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        return "recall_at_k.svg"
    return "recall_at_k.png"


TITLE = "# Evaluation report"
GOLD_LINE = "- Gold: `"  # the third line, which tells a report from notes of that title
_OURS = ("report.md", "recall_at_k.png", "recall_at_k.svg")


def check_directory(directory: str | Path) -> None:
    """Refuse a report directory where the report would replace files it did not write:
    ``report.md`` and the plot are rewritten only beside a ``report.md`` of ours. Makes the
    directory, so that a place that cannot be written fails before the evaluation runs.

    Raises:
        RagError: ``directory`` is a file, cannot be made or written, or holds a
            ``report.md`` or plot that is not an earlier report's.
    """
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise RagError(f"{out} is a file, not a report directory")
    report = out / "report.md"
    if report.is_symlink() or (report.exists() and not _is_report(report)):
        raise RagError(f"{report} is not an evaluation report; not replacing it")
    if not report.exists():
        theirs = [name for name in _OURS[1:] if (out / name).exists()]
        if theirs:
            raise RagError(f"{out / theirs[0]} is not an evaluation report's; not replacing it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RagError(f"cannot write the report in {out}: {e.strerror}") from None
    if not os.access(out, os.W_OK):  # a folder that exists: mkdir did not try it
        raise RagError(f"cannot write the report in {out}: it is not writable")


def _is_report(path: Path) -> bool:
    """Whether ``path`` opens as `write_report` writes it: the title, a blank line and the
    gold line (a person's own notes may well be titled "# Evaluation report")."""
    if not path.is_file():  # a FIFO's open waits for a writer: rag eval hung
        return False
    try:
        with open(path, encoding="utf-8") as f:
            head = [f.readline().rstrip("\n") for _ in range(3)]
    except (OSError, UnicodeDecodeError):
        return False
    return head[:2] == [TITLE, ""] and head[2].startswith(GOLD_LINE)


def write_report(
    result: EvalResult, directory: str | Path, comparison: Comparison | None = None
) -> Path:
    """Write ``directory``/report.md (metrics, notes, baseline comparison, one row per
    question) and the recall@k plot beside it; returns the report's path.

    Raises:
        RagError: The directory holds files of the same names that no report wrote
            (`check_directory`).
    """
    out = Path(directory)
    check_directory(out)
    # report.md first: a plot left alone in the directory, by a kill between the two, would
    # look like somebody else's file to the next run (`check_directory`).
    plot = plot_name(result)
    md = [
        TITLE,
        "",
        f"{GOLD_LINE}{result.gold or 'gold items'}`, {result.questions} questions "
        f"({result.gold_digest})",
        f"- Configuration: {_describe(result)}",
        f"- Run: {result.seconds:.1f} s",
        *([f"- **{interrupted_line(result)}**"] if result.interrupted else []),
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
        md += [f"![recall@k]({plot})", ""]
    if comparison:
        md += ["## Compared with the baseline", "", *comparison_table(comparison, markdown=True)]
        md += ["", *[f"- {line}" for line in comparison.changes()], ""]
    failed = [i.id for i in result.items if not i.passed]
    md += [
        "## Questions",
        "",
        f"Failed {len(failed)} of {result.scored}: {', '.join(failed) or 'none'}",
        "",
        "| id | question | answer | citations | EM | F1 | facts | refused | pass |",
        "| --- | --- | --- | --- | ---: | ---: | --- | --- | --- |",
        *[_row(i) for i in result.items],
    ]
    path = out / "report.md"
    write_whole(path, "\n".join(md) + "\n")
    plot_recall(result, out)
    return path
