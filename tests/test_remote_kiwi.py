"""`rag ask` and `rag chat` load Kiwi in a forked child (`rag.remote_kiwi`): the same
analyses, the same answers, and the parent carries on alone when the child is gone or a
Ctrl-C cut a call short."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.answer import REFUSALS
from tests.conftest import ROOT, SEEDS

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forks")

TEXTS = [
    "카카오엔터프라이즈는 왜 구조조정되었나?",
    "회의가 괜찬은 분위기였다. 영업손실은 1406억원으로 늘었다 그러나 매출은 3배 가까이 커졌다",
    "Kakao Enterprise cut jobs in 2024.",
    "",
]

# In a fresh process, as the `rag` entry point runs it: Kiwi's analyses through the child,
# then (after the child is killed, if asked) through the parent's own Kiwi, then Kiwi's own.
ANALYSES = """
import json, os, signal, sys
from rag import korean, remote_kiwi
remote_kiwi.start(["ask", "질문"])
remote = korean.kiwi()
assert remote is remote_kiwi.started, remote
texts = json.loads(sys.argv[2])
if sys.argv[1] == "kill":
    os.kill(remote.pid, signal.SIGKILL)
    os.waitpid(remote.pid, 0)
if sys.argv[1] == "ctrl-c":  # while the parent waits for a reply
    class Cut:
        def __init__(self, file):
            self.file, self.cut = file, False
        def read(self, n=-1):
            if not self.cut:
                self.cut = True
                raise KeyboardInterrupt
            return self.file.read(n)
        def readline(self):
            return self.file.readline()
        def close(self):
            self.file.close()
    remote._reader = Cut(remote._reader)
    try:
        remote.tokenize(texts[1])
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the Ctrl-C was lost")
    try:  # the parent ended and reaped the child, which held a second Kiwi
        os.kill(remote.pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("the child is still running")
def analyses(kiwi):
    return [
        [(t.form, t.tag, t.start, t.len) for t in kiwi.tokenize(texts[0])],
        [[(t.form, t.tag, t.start, t.len) for t in ts] for ts in kiwi.tokenize(texts)],
        [[(s.start, s.end) for s in kiwi.split_into_sents(t)] for t in texts],
    ]
print(json.dumps([analyses(remote), remote._local is not None, analyses(korean.load_kiwi())]))
"""


def _run(code: str, *args: str, stdin: str = "") -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("child", ["alive", "kill", "ctrl-c"])
def test_the_child_analyzes_as_kiwi_does_and_the_parent_takes_over_if_it_dies(
    child: str,
) -> None:
    remote, fell_back, local = json.loads(_run(ANALYSES, child, json.dumps(TEXTS)))
    assert remote == local
    assert fell_back == (child != "alive")
    assert ["엔터프라이즈", "NNP"] in [t[:2] for t in local[0]]  # not trivially empty


def test_only_rag_ask_forks(monkeypatch: pytest.MonkeyPatch) -> None:
    from rag import remote_kiwi

    monkeypatch.setattr(remote_kiwi, "RemoteKiwi", lambda: pytest.fail("forked"))
    for args in (["search", "질문"], ["ask", "--help"], ["chat", "--help"], ["index", "a"], []):
        remote_kiwi.start(args)
    assert remote_kiwi.started is None


# `rag ask` as the entry point runs it (the child started first), and as the in-process
# command runs it (no child), with the fake embedder.
ASK = """
import sys
from rag import remote_kiwi
if sys.argv[1] == "child":
    remote_kiwi.start(sys.argv[2:])
    assert remote_kiwi.started is not None
from rag.backends import register_backend
from rag.cli import main
from tests.conftest import FakeEmbedder
register_backend("fake", FakeEmbedder)
sys.argv = ["rag", *sys.argv[2:]]
main()
"""


def test_rag_ask_answers_the_same_with_kiwi_in_a_child(tmp_path: Path) -> None:
    index = str(tmp_path / "idx")
    _run(ASK, "none", "index", str(SEEDS), "--index", index, "--embedder", "fake")
    refused = []
    for question in ("카카오엔터프라이즈는 왜 구조조정되었나?", "카카오브레인의 대표는 누구인가?"):
        args = ["ask", question, "--index", index, "--json"]
        answers = [json.loads(_run(ASK, how, *args)) for how in ("child", "none")]
        for a in answers:
            del a["timing"]
        assert answers[0] == answers[1]
        refused.append(answers[0]["refused"] or not answers[0]["citations"])
    assert refused == [False, True]  # one answered with citations, one refused


def test_a_rag_ask_that_fails_at_once_leaves_no_child_loading_kiwi(tmp_path: Path) -> None:
    """The child went on loading Kiwi (a second and a half of CPU) after the command had
    failed (no index), until it read the closed pipe."""
    marker = f"질문-{os.getpid()}"
    done = subprocess.run(
        [sys.executable, "-c", ASK, "child", "ask", marker, "--index", str(tmp_path / "none")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "no index" in done.stderr, done.stderr
    left = [p for p in Path("/proc").glob("[0-9]*") if marker in _cmdline(p)]
    assert left == []


def _cmdline(process: Path) -> str:
    try:
        return (process / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def test_rag_chat_answers_the_same_with_kiwi_in_a_child(tmp_path: Path) -> None:
    index = str(tmp_path / "idx")
    _run(ASK, "none", "index", str(SEEDS), "--index", index, "--embedder", "fake")
    questions = "카카오엔터프라이즈는 왜 구조조정되었나?\n그 회사의 새 대표는?\n"
    questions += "카카오브레인의 대표는 누구인가?\n"  # a near miss: refused
    args = ["chat", "--index", index]
    outputs = [_run(ASK, how, *args, stdin=questions) for how in ("child", "none")]
    assert outputs[0] == outputs[1]
    assert "Sources:" in outputs[0] and REFUSALS["ko"] in outputs[0]


def test_while_the_child_loads_ask_embeds_the_likely_sentences(
    seeds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `rag ask` waited half a second for the child's Kiwi and only then embedded the
    passages' sentences (0.2 s). While the child loads, a thread now embeds the sentences of
    the passages dense search ranks first; the answer then finds most of them embedded, and
    is the same answer."""
    from types import SimpleNamespace

    from rag import Index, remote_kiwi, support

    index = Index.create(embedder="fake")
    index.add([seeds])
    question = "카카오엔터프라이즈는 왜 구조조정되었나?"
    alone = index.ask(question)
    support._VECTORS._items.clear()
    embedded: list[str] = []
    embedder = type(index.embedder)
    real_embed = embedder.embed_passages
    monkeypatch.setattr(
        embedder,
        "embed_passages",
        lambda self, texts, *a, **kw: embedded.extend(texts) or real_embed(self, texts, *a, **kw),
    )
    in_advance: list[list[str]] = []
    real_prefetch = support.prefetch_sentences

    def prefetch(e: object, texts: list[str]) -> None:
        assert embedded == []  # before the answer embedded anything
        real_prefetch(e, texts)  # type: ignore[arg-type]
        in_advance.append(list(embedded))

    monkeypatch.setattr(support, "prefetch_sentences", prefetch)
    monkeypatch.setattr(remote_kiwi, "started", SimpleNamespace(ready=False))
    early = index.ask(question)
    assert early.model_dump(exclude={"timing"}) == alone.model_dump(exclude={"timing"})
    [advance] = in_advance
    passages = tuple(h.text for h in early.passages)
    shown = {s.text for s in support.evidence_for(index.embedder, passages).sentences}
    assert len(shown & set(advance)) >= 0.8 * len(shown)
    assert len(embedded) == len(set(embedded))  # none embedded twice
    # Once the child has answered, its Kiwi is loaded and nothing waits: no thread.
    monkeypatch.setattr(remote_kiwi, "started", SimpleNamespace(ready=True))
    in_advance.clear()
    index.ask(question)
    assert in_advance == []
