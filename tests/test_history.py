"""`rag chat`'s history file (`rag.repl`): appended to, never written over."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag import repl

readline = pytest.importorskip("readline")


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chat on a terminal (history is kept only there), with an empty history in memory."""
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    readline.clear_history()


def chat(*questions: str) -> None:
    history = repl._setup_readline()
    for q in questions:
        readline.add_history(q)
        history.note(q)
    history.save()


def test_a_users_file_named_as_history_only_grows(
    terminal: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # readline wrote the file over: a 1,500-line notes file kept its last 1,000 lines.
    notes = tmp_path / "notes.txt"
    lines = [f"note {i}" for i in range(1500)]
    notes.write_text("\n".join(lines) + "\n")
    notes.chmod(0o644)
    monkeypatch.setenv("RAG_HISTORY", str(notes))
    chat("카카오엔터프라이즈는 왜 구조조정되었나?")
    assert notes.read_text().splitlines() == [*lines, "카카오엔터프라이즈는 왜 구조조정되었나?"]
    assert notes.stat().st_mode & 0o777 == 0o644


def test_a_question_is_not_glued_to_a_last_line_without_its_newline(
    terminal: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("line 1\nlast line without newline")
    monkeypatch.setenv("RAG_HISTORY", str(notes))
    chat("플리토는 무엇을 수출하나?")
    assert notes.read_text().splitlines() == [
        "line 1",
        "last line without newline",
        "플리토는 무엇을 수출하나?",
    ]
    chat("카카오브레인은?")  # a file that ends its lines is appended to as it is
    assert notes.read_text().splitlines()[2:] == ["플리토는 무엇을 수출하나?", "카카오브레인은?"]


def test_rags_own_history_keeps_the_last_entries(
    terminal: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.delenv("RAG_HISTORY")
    chat(*(f"q{i}" for i in range(repl.HISTORY_LENGTH + 5)))
    kept = (tmp_path / "rag" / "history").read_text().splitlines()
    assert len(kept) == repl.HISTORY_LENGTH and kept[-1] == f"q{repl.HISTORY_LENGTH + 4}"


def test_a_symlinked_history_is_written_where_it_points(
    terminal: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # readline 8.2 followed the link from the working directory and wrote a file there.
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "target.txt").write_text("old\n")
    (tmp_path / "h" / "link.txt").symlink_to("target.txt")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setenv("RAG_HISTORY", str(tmp_path / "h" / "link.txt"))
    chat("new")
    assert (tmp_path / "h" / "target.txt").read_text().splitlines() == ["old", "new"]
    assert os.listdir(tmp_path / "elsewhere") == []


@pytest.mark.parametrize("where", ["folder", "missing/history"])
def test_a_history_that_cannot_be_kept_is_said_once(
    terminal: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    (tmp_path / "folder").mkdir()
    monkeypatch.setenv("RAG_HISTORY", str(tmp_path / where))
    chat("q")
    assert capsys.readouterr().err.startswith("rag: not keeping the chat history: ")
    assert not (tmp_path / "missing").exists()


def test_questions_are_saved_when_the_history_in_memory_is_capped(
    terminal: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `set history-size 3` in ~/.inputrc: the history's length stopped growing at 3, the
    # questions were counted from it, and none was saved once the file held 3 or more.
    kept = tmp_path / "h"
    kept.write_text("o1\no2\no3\no4\no5\n")
    monkeypatch.setenv("RAG_HISTORY", str(kept))
    readline.parse_and_bind("set history-size 3")  # as ~/.inputrc sets it
    try:
        history = repl._setup_readline()
        for q in ("q1", "q2"):
            readline.add_history(q)
            history.note(q)
        assert readline.get_current_history_length() == 3
        history.save()
    finally:
        readline.parse_and_bind("set history-size -1")
    assert kept.read_text().splitlines() == ["o1", "o2", "o3", "o4", "o5", "q1", "q2"]


def test_the_terminal_closing_saves_the_questions_asked(
    terminal: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGHUP (the terminal closed) or SIGTERM ended `rag chat` without saving its history:
    it was saved only on /quit, Ctrl-D or an error."""
    import signal

    kept = tmp_path / "h"
    monkeypatch.setenv("RAG_HISTORY", str(kept))
    monkeypatch.setattr(repl, "_turn", lambda line, session, show: None)
    lines = iter(["카카오브레인은?", None])

    def typed(prompt: str) -> str:
        line = next(lines)
        if line is None:  # the terminal closes while the chat waits for a question
            os.kill(os.getpid(), signal.SIGHUP)
            raise AssertionError("the signal did not end the chat")
        readline.add_history(line)
        return line

    monkeypatch.setattr("builtins.input", typed)
    handler = signal.getsignal(signal.SIGHUP)
    with pytest.raises(SystemExit) as ended:
        repl.run(None, print, print)  # type: ignore[arg-type]
    assert ended.value.code == 128 + signal.SIGHUP
    assert kept.read_text().splitlines() == ["카카오브레인은?"]
    assert signal.getsignal(signal.SIGHUP) == handler  # put back as it was


def test_a_chat_run_off_the_main_thread_needs_no_signals(
    terminal: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signal handlers can be set only in the main thread: `repl.run` in another one (an
    application embedding the chat) failed with ValueError before asking anything."""
    import threading

    def ended(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", ended)
    errors: list[BaseException] = []

    def chat_in_thread() -> None:
        try:
            repl.run(None, print, print)  # type: ignore[arg-type]
        except BaseException as e:  # reported below
            errors.append(e)

    thread = threading.Thread(target=chat_in_thread)
    thread.start()
    thread.join()
    assert errors == []
