"""The `rag chat` loop: line editing and history (readline), commands, Ctrl-C handling."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import config
from .chat import ChatSession
from .errors import RagError
from .sanitize import check_query, configured_secrets, safe_message, terminal_text

HELP = """Ask a question about the indexed articles; follow-up questions keep the context.
  /sources   the passages behind the last answer
  /reset     start a new conversation
  /help      this help
  /quit      leave (also Ctrl-D)
Ctrl-C cancels the answer being written."""

# An ASCII prompt: readline measures the prompt to place the cursor, and Hangul in the
# prompt itself is where terminals most often get the width wrong.
PROMPT = "rag> "


HISTORY_LENGTH = 1000  # entries kept in the default history file


def history_file() -> tuple[Path, bool]:
    """``$RAG_HISTORY``, else ``$XDG_STATE_HOME/rag/history`` (``~/.local/state``); and
    whether it is that default, rag's own file."""
    if os.environ.get("RAG_HISTORY"):
        return Path(os.environ["RAG_HISTORY"]).expanduser(), False
    state = os.environ.get("XDG_STATE_HOME") or config.home() / ".local" / "state"
    return Path(state).expanduser() / "rag" / "history", True


def _setup_readline() -> Callable[[], None]:
    """Enable line editing and history on a terminal; returns a function saving history.

    The new questions are appended to the file, never written over it: a ``$RAG_HISTORY``
    naming a user's file lost all but its last 1,000 lines (readline rewrote it whole), and
    two chats at once lost the first one's questions. Only rag's own file is trimmed to
    `HISTORY_LENGTH` entries. A symlink is followed here, as readline 8.2 followed it from
    the working directory and wrote a file there."""
    if not sys.stdin.isatty():
        return lambda: None
    try:
        import readline
    except ImportError:  # e.g. Windows without pyreadline
        return lambda: None
    try:
        named, ours = history_file()
    except RagError:  # no home directory: no history
        return lambda: None
    path = Path(os.path.realpath(named))
    folder = path.parent.is_dir() or ours
    if (path.exists() and not path.is_file()) or not folder:
        what = "is not a file" if folder else "is in a folder that does not exist"
        print(f"rag: not keeping the chat history: {named} {what}", file=sys.stderr)
        return lambda: None
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    before = readline.get_current_history_length()

    def save() -> None:
        new = readline.get_current_history_length() - before
        if new <= 0:
            return
        with contextlib.suppress(OSError):
            if ours:
                path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)  # readline appends only to a file that exists
            readline.set_history_length(HISTORY_LENGTH if ours else -1)  # -1: no trimming
            readline.append_history_file(new, path)

    return save


def run(
    session: ChatSession,
    show_answer: Callable[[Any], Any],
    show_sources: Callable[[Any], None],
) -> None:
    """Read questions until /quit or end of input; errors end the turn, not the session."""
    save_history = _setup_readline()
    out = sys.stdout
    out.write("Ask about the indexed articles. /help for commands, /quit to leave.\n")
    try:
        while True:
            try:
                line = input(PROMPT).strip()
            except EOFError:
                out.write("\n")
                return
            except KeyboardInterrupt:
                out.write("\n")
                continue
            if not line:
                continue
            if line.startswith("/"):
                if _command(line, session, show_sources):
                    return
                continue
            _turn(line, session, show_answer)
    finally:
        save_history()


def _command(line: str, session: ChatSession, show_sources: Callable[[Any], None]) -> bool:
    """Run a /command; returns True to leave."""
    name = line.split()[0].lower()
    if name in ("/quit", "/exit", "/q"):
        return True
    if name == "/help":
        print(HELP)
    elif name == "/reset":
        session.reset()
        print("Conversation cleared.")
    elif name == "/sources":
        if session.last is None:
            print("No answer yet.")
        else:
            show_sources(session.last)
    else:
        print(f"Unknown command {name}; /help lists them.")
    return False


def _turn(question: str, session: ChatSession, show_answer: Callable[[Any], Any]) -> None:
    try:
        check_query(question, "question")
        standalone, stream = session.ask_stream(question)
        if standalone != question:
            print(f"(searching for: {terminal_text(standalone)})")
        answer = show_answer(stream)
    except KeyboardInterrupt:
        print("\n[answer cancelled]")
        return
    except RagError as e:
        print(f"error: {safe_message(str(e), configured_secrets())}")
        return
    if answer is not None:
        session.record(question, standalone, answer)
