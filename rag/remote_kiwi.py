"""The shared Kiwi loaded in a forked child process, for `rag ask` and `rag chat`.

Kiwi takes over a second to load and build, and holds the GIL while it does, so a process
that loads it can do nothing else meanwhile. `rag ask` and `rag chat` fork this child as
their very first step (`rag.__main__`); the child loads Kiwi while the parent imports the
command, opens the index and embeds the question (or the user types it), then analyzes the
texts the parent sends it through a pipe. The parent ends it when it stops using it (a
Ctrl-C mid-call, Kiwi raising) and when it exits, also when it fails at once.
Its results are Kiwi's own (the same analyzer and options: `rag.korean.load_kiwi`), as
plain tuples. If the child fails, the parent loads Kiwi itself and carries on.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import signal
import threading
from typing import Any, NamedTuple


class Morph(NamedTuple):
    """A Kiwi token as the child sends it: the fields the package reads."""

    form: str
    tag: str
    start: int
    len: int


class Span(NamedTuple):
    """A sentence as the child sends it (Kiwi's ``split_into_sents``)."""

    start: int
    end: int


class RemoteKiwi:
    """Kiwi's ``tokenize`` and ``split_into_sents``, computed by the child."""

    def __init__(self) -> None:
        requests, self._to_child = os.pipe()
        self._from_child, replies = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            _serve(requests, replies, (self._to_child, self._from_child))
        os.close(requests)
        os.close(replies)
        self._writer = os.fdopen(self._to_child, "wb")
        self._reader = os.fdopen(self._from_child, "rb")
        self._failed = False
        self._local: Any = None  # this process's own Kiwi, once the child failed
        self.ready = False  # the child has answered: its Kiwi is loaded
        # A command that fails at once (no index) would leave the child loading Kiwi for
        # a second and a half of CPU before it saw the closed pipe.
        atexit.register(self._retire)

    def tokenize(self, text: str | list[str]) -> Any:
        """Kiwi's tokens of ``text`` (a list of them for a list of texts)."""
        reply = self._call("tokenize", text)
        if reply is None:
            return self._own().tokenize(text)
        if isinstance(text, str):
            return [Morph(*t) for t in reply]
        return [[Morph(*t) for t in tokens] for tokens in reply]

    def split_into_sents(self, text: str) -> Any:
        """Kiwi's sentences of ``text``, as spans."""
        reply = self._call("sents", text)
        if reply is None:
            return self._own().split_into_sents(text)
        return [Span(*s) for s in reply]

    def _call(self, op: str, arg: object) -> Any:
        """The child's reply, or ``None`` once it failed (it is not asked again)."""
        if self._failed:
            return None
        try:
            pickle.dump((op, arg), self._writer)
            self._writer.flush()
            kind, value = pickle.load(self._reader)
        except BaseException as e:
            # After a Ctrl-C mid-call, a reply left in the pipe would be read as the next
            # call's: the child is not used again.
            self._retire()
            if not isinstance(e, Exception):
                raise
            return None
        if kind != "ok":  # Kiwi raised: this process's own Kiwi raises it again
            self._retire()
            return None
        self.ready = True
        return value

    def _retire(self) -> None:
        """Stop using the child and end it, freeing its Kiwi at once (a chat goes on with
        this process's own), and reap it. The child has nothing to save."""
        if self._failed:
            return
        self._failed = True
        for pipe in (self._reader, self._writer):
            with contextlib.suppress(OSError):
                pipe.close()
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)

    def _own(self) -> Any:
        if self._local is None:
            from .korean import load_kiwi

            self._local = load_kiwi()
        return self._local


def _serve(requests: int, replies: int, parents: tuple[int, int]) -> None:
    """The child: load Kiwi, answer requests until the parent closes its end, leave without
    running any cleanup (the parent's atexit handlers and buffers are the parent's)."""
    try:
        for fd in parents:
            os.close(fd)
        detach()
        # Ctrl-C is for the parent; the child leaves when the parent's end of the pipe closes.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        from .korean import load_kiwi

        analyzer = load_kiwi()
        analyzer.tokenize("준비")  # Kiwi builds itself on its first analysis
        with os.fdopen(requests, "rb") as reader, os.fdopen(replies, "wb") as writer:
            while True:
                try:
                    op, arg = pickle.load(reader)
                except EOFError:
                    break
                try:
                    if op == "sents":
                        reply: Any = [(s.start, s.end) for s in analyzer.split_into_sents(arg)]
                    else:
                        analyzed = analyzer.tokenize(arg)
                        rows = [analyzed] if isinstance(arg, str) else analyzed
                        reply = [[(t.form, t.tag, t.start, t.len) for t in ts] for ts in rows]
                        reply = reply[0] if isinstance(arg, str) else reply
                    pickle.dump(("ok", reply), writer)
                except Exception as e:  # the parent analyzes it itself, and reports it
                    pickle.dump(("failed", repr(e)), writer)
                writer.flush()
    finally:
        os._exit(0)


def detach() -> None:
    """In a forked child: leave the terminal and the caller's pipes, or a caller reading the
    parent's output would wait for the child too (also after the parent failed)."""
    quiet = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(quiet, fd)


started: RemoteKiwi | None = None


def start(args: list[str]) -> None:
    """For the command lines ``rag ask QUESTION [OPTIONS]`` and ``rag chat [OPTIONS]``
    (``args`` without the program): fork the child that loads Kiwi, before the command's
    modules load."""
    global started
    if args[:1] in (["ask"], ["chat"]) and "--help" not in args and _can_fork():
        started = RemoteKiwi()


def _can_fork() -> bool:
    # No other thread may hold a lock the child would need.
    return hasattr(os, "fork") and threading.active_count() == 1
