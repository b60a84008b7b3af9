"""The `rag chat` loop: line editing and history (readline), commands, Ctrl-C handling."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
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
        return config.expand(os.environ["RAG_HISTORY"]), False
    state = os.environ.get("XDG_STATE_HOME") or config.home() / ".local" / "state"
    return config.expand(state) / "rag" / "history", True


class _History:
    """The chat's history on a terminal: which lines this session added, and saving them."""

    def __init__(self, path: Path | None = None, ours: bool = False) -> None:
        self.path, self.ours = path, ours
        self.added = 0
        self.last = ""

    def note(self, line: str) -> None:
        """Count ``line``, as readline added it to the history: a line that is not empty
        and not the one before."""
        if line and line != self.last:
            self.added += 1
        self.last = line or self.last

    def save(self) -> None:
        """Append this session's lines to the file. They are counted as they are read, not
        from the history's length: with `history-size` set in ~/.inputrc the length stops
        growing at that size, and no question was saved after it."""
        if self.path is None or not self.added:
            return
        import readline

        new = min(self.added, readline.get_current_history_length())
        with contextlib.suppress(OSError):
            if self.ours:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(mode=0o600)  # readline appends only to a file that exists
            _end_line(self.path)
            readline.set_history_length(HISTORY_LENGTH if self.ours else -1)  # -1: no trim
            readline.append_history_file(new, self.path)


def _end_line(path: Path) -> None:
    """End ``path``'s last line if it does not: readline appends right after it, and the
    first question was glued onto the last line of a ``$RAG_HISTORY`` a person wrote."""
    with open(path, "rb+") as f:
        if f.seek(0, os.SEEK_END) and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n":
            f.write(b"\n")


def _setup_readline() -> _History:
    """Enable line editing and history on a terminal; returns the session's history.

    The new questions are appended to the file, never written over it: a ``$RAG_HISTORY``
    naming a user's file lost all but its last 1,000 lines (readline rewrote it whole), and
    two chats at once lost the first one's questions. Only rag's own file is trimmed to
    `HISTORY_LENGTH` entries. A symlink is followed here, as readline 8.2 followed it from
    the working directory and wrote a file there."""
    if not sys.stdin.isatty():
        return _History()
    try:
        import readline
    except ImportError:  # e.g. Windows without pyreadline
        return _History()
    try:
        named, ours = history_file()
    except RagError:  # no home directory: no history
        return _History()
    path = Path(os.path.realpath(named))
    folder = path.parent.is_dir() or ours
    if (path.exists() and not path.is_file()) or not folder:
        what = "is not a file" if folder else "is in a folder that does not exist"
        print(f"rag: not keeping the chat history: {named} {what}", file=sys.stderr)
        return _History()
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    history = _History(path, ours)
    length = readline.get_current_history_length()
    history.last = (readline.get_history_item(length) or "") if length else ""
    return history


_ENDING = (signal.SIGHUP, signal.SIGTERM) if hasattr(signal, "SIGHUP") else (signal.SIGTERM,)


def run(
    session: ChatSession,
    show_answer: Callable[[Any], Any],
    show_sources: Callable[[Any], None],
) -> None:
    """Read questions until /quit or end of input; errors end the turn, not the session."""
    history = _setup_readline()
    out = sys.stdout
    out.write("Ask about the indexed articles. /help for commands, /quit to leave.\n")
    # The terminal closing (SIGHUP) or a kill (SIGTERM) ends the chat as /quit does, so the
    # history is saved: it was lost with the session's questions.
    # Only on the main thread (signals go there), and not over a signal the user has rag
    # ignore (`nohup rag chat` ignores SIGHUP).
    main = threading.current_thread() is threading.main_thread()
    ending = [s for s in _ENDING if main and signal.getsignal(s) is not signal.SIG_IGN]
    before = {signum: signal.signal(signum, _leave) for signum in ending}
    try:
        while True:
            try:
                line = input(PROMPT)
                history.note(line)
                line = line.strip()
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
        history.save()
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _leave(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


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
