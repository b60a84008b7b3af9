"""Terminal output for the `rag` command: rich for people, JSON for scripts.

Kept apart from `rag.cli` (which parses options and calls the API) so both command modules
share one way of printing.
"""

from __future__ import annotations

import errno
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from .records import Hit, IndexInfo, IndexReport


def stream_answer(stream: Any) -> Any:
    """Print an answer as it arrives, then its sources and what the checks found."""
    from .errors import LLMError

    out = console()
    shown = False
    try:
        for piece in stream:
            out.print(escape(piece), end="")
            shown = shown or bool(piece)
    except LLMError:
        if shown:  # text is on the screen: say it is not the whole answer
            out.print()
            out.print(escape("[answer incomplete]"), style="bold red")
        raise
    out.print()
    answer = stream.answer
    if answer is None:
        return None
    # What streamed is not the answer: the model's reasoning opened it, or the copies of a
    # loop ran on before the loop was seen. Say so, and show the answer alone.
    if answer.text and getattr(stream, "reasoning_shown", False):
        out.print(escape("note: the text above opened with the model's reasoning; the answer:"))
        out.print(escape(answer.text))
    elif answer.text and answer.stop_reason == "loop":
        out.print(escape("note: the text above repeats itself; the answer without the repeats:"))
        out.print(escape(answer.text))
    if not answer.complete:  # on a line of its own, never glued to the answer
        out.print(escape("[answer incomplete]"), style="bold red")
    if not answer.refused:
        print_sources(answer, cited_only=True)
    for note in answer.notes:
        out.print(escape(f"note: {note}"), style="yellow")
    for n in answer.invalid_markers:
        out.print(escape(f"note: removed citation [{n}]: no such passage"), style="yellow")
    for claim in answer.unsupported:
        why = "cites nothing" if not claim.cited else "not supported by its citations"
        out.print(f"note: {why}: {escape(snippet(claim.sentence, 80))}", style="yellow")
    return answer


def print_sources(answer: Any, cited_only: bool = False) -> None:
    out = console()
    cited = {c.n for c in answer.citations}
    rows = [(n, h) for n, h in enumerate(answer.passages, 1) if not cited_only or n in cited]
    if not rows:
        out.print("No sources.")
        return
    quotes = {c.n: c.quote for c in answer.citations if getattr(c, "quote", None)}
    out.print("Sources:")
    for n, h in rows:
        meta = h.about
        title = h.title or (Path(h.path).name if h.path else h.doc_id)
        mark = "" if n in cited or cited_only else "  (not cited)"
        out.print(f"  [{n}] {escape(title)}" + (f" ({escape(meta)})" if meta else "") + mark)
        if n in quotes:
            out.print("      " + quoted_snippet(h.text, quotes[n]))
        else:
            out.print(f"      {escape(snippet(h.text, 100))}", style="dim")


def quoted_snippet(text: str, quote: tuple[int, int], context: int = 30, width: int = 200) -> str:
    """Rich markup: the quoted sentence of ``text`` highlighted, with a little of the text
    around it dimmed (``context`` characters each side, cut at a space)."""
    a, b = quote
    before = " ".join(text[max(0, a - context) : a].split(" ")[1:] if a > context else [text[:a]])
    after = text[b : b + context]
    after = after.rsplit(" ", 1)[0] if b + context < len(text) else after
    head = ("…" if a > len(before) else "") + " ".join(before.split())
    tail = " ".join(after.split()) + ("…" if b + len(after) < len(text) else "")
    body = snippet(text[a:b], width)
    parts = [
        f"[dim]{escape(head)}[/dim] " if head.strip("…") else "",
        f"[bold yellow]{escape(body)}[/bold yellow]",
        f" [dim]{escape(tail)}[/dim]" if tail.strip("…") else "",
    ]
    return "".join(parts)


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """``data`` as JSON; json escapes C0 controls, and C1 controls, DEL and bidi overrides
    (which it leaves raw) are written as ``\\uXXXX`` too, so no article acts on a terminal."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        raise OSError(errno.EBADF, "standard output is closed")
    sys.stdout.write(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


# Outside strings JSON is ASCII, so these can only be inside strings, where \uXXXX is exact.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def with_progress(run: Any) -> IndexReport:
    """Run an add with a progress bar on stderr; where stderr is not a terminal (CI logs,
    pipes) a plain line at the start and end of each stage and every 10 seconds instead."""
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    err = console(stderr=True)
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        tasks: dict[str, Any] = {}
        last_line = [0.0]

        def progress(stage: str, done: int, total: int) -> None:
            new = stage not in tasks
            if new:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)
            now = time.monotonic()
            due = new or done == total or now - last_line[0] > 10
            if not err.is_terminal and total and due:
                last_line[0] = now
                sys.stderr.write(f"{stage} {done}/{total}\n")

        return run(progress)


def print_report(report: IndexReport, paths: list[Path], index: Path | str) -> None:
    """What `rag index` did; ``index`` is the directory, or a store's URI."""
    out = console()
    where = ", ".join(str(p) for p in paths)
    indexed = report.added or report.updated or report.unchanged or report.duplicates
    into = f"{index}/" if isinstance(index, Path) else index
    head = f"Indexed {where} into {into}" if indexed else f"Nothing indexed from {where}"
    out.print(f"{escape(head)} in {report.seconds:.1f} s")
    out.print(
        f"  added {len(report.added)}, updated {len(report.updated)}, "
        f"unchanged {len(report.unchanged)}, duplicates {len(report.duplicates)}, "
        f"skipped {len(report.skipped)}"
    )
    out.print(f"  chunks embedded {report.chunks_embedded}, reused {report.chunks_reused}")
    # A file of many bad records (a JSON array of strings) printed a line for each of them.
    shown: dict[str, int] = {}
    for s in [*report.duplicates, *report.skipped]:
        shown[s.path] = shown.get(s.path, 0) + 1
        if shown[s.path] <= SKIPPED_PER_FILE:
            where = relative(s.path) + (f":{s.line}" if s.line is not None else "")
            out.print(f"  skipped {escape(where)}: {escape(s.reason)}")
    for path, n in shown.items():
        if n > SKIPPED_PER_FILE:
            more = n - SKIPPED_PER_FILE
            out.print(escape(f"  … and {more} more skipped in {relative(path)} (--json lists all)"))


SKIPPED_PER_FILE = 5  # skip lines printed per file; `--json` has them all


def relative(path: str) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def print_hits(hits: list[Hit]) -> None:
    out = console()
    for i, h in enumerate(hits, 1):
        meta = h.about
        title = h.title or (Path(h.path).name if h.path else h.doc_id)
        out.print(f"[bold]{i}. {escape(title)}[/bold]" + (f" ({escape(meta)})" if meta else ""))
        where = f"   {escape(h.chunk_id)}  score {h.score:.3f}  chars {h.start}-{h.end}"
        out.print(where, style="dim")
        out.print(f"   {escape(snippet(h.text))}")


def print_info(info: IndexInfo) -> None:
    out = console()
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
        out.print(f"{name:<10} {escape(value)}")


def escape(text: str) -> str:
    """``text`` to print with rich: escape sequences and control characters removed (an
    article must not clear the screen or retitle the window), rich markup escaped."""
    from rich.markup import escape

    from .sanitize import terminal_text

    return escape(terminal_text(text))
