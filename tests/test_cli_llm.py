"""`rag ask` and `rag chat` with an OpenAI-compatible server on 127.0.0.1 (fake embedder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import Index
from rag.chat import ChatSession
from rag.evaluate import evaluate, score
from rag.repl import run
from tests.conftest import KAKAO, SEEDS, FakeGenerator
from tests.llm_server import (
    LLMServer,
    break_stream,
    closed_port_url,
    delay,
    loop,
    reply,
    status,
)

QUESTION = "카카오엔터프라이즈 영업손실은 얼마나 늘었나?"


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    shutil.copytree(SEEDS, tmp_path / "articles")
    Index.create(tmp_path / "idx", embedder="fake").add([tmp_path / "articles"])
    return tmp_path / "idx"


def ask(index_dir: Path, base_url: str, *extra: str) -> tuple[int, str, str]:
    from rag.cli import app

    args = ["ask", QUESTION, "--index", str(index_dir), "--llm", "openai", "--model", "m"]
    result = CliRunner().invoke(app, [*args, "--base-url", base_url, *extra])
    return result.exit_code, result.stdout, result.stderr


def test_ask_streams_the_llm_answer_with_checked_citations(
    index_dir: Path, llm_server: LLMServer
) -> None:
    llm_server.queue(reply("영업손실 폭이 1406억원으로 증가했다 [1][7]."))
    code, out, err = ask(index_dir, llm_server.base_url)
    assert code == 0, err
    assert out.startswith("영업손실 폭이 1406억원으로 증가했다 [1][7].\nSources:\n  [1] ")
    assert "note: removed citation [7]: no such passage" in out
    request = llm_server.requests[0]
    assert request.model == "m" and request.stream is True
    assert "<passages>\n[1] " in request.messages[1]["content"]


def test_reasoning_opened_by_the_chat_template_is_followed_by_the_answer(
    index_dir: Path, llm_server: LLMServer
) -> None:
    """A model whose chat template opens <think> streams its reasoning before a lone
    </think>: it was on the screen, glued to the answer, with nothing saying so."""
    reasoning = "The user wants the loss. Passage 1 says 1406. "
    answer = "영업손실 폭이 1406억원으로 증가했다 [1]."
    text = f"{reasoning}</think>\n\n{answer}"
    llm_server.queue(reply(text, [text[i : i + 7] for i in range(0, len(text), 7)]))
    code, out, err = ask(index_dir, llm_server.base_url)
    assert code == 0, err
    shown, _, rest = out.partition("note: the text above opened with the model's reasoning")
    assert shown.startswith("The user wants the loss.")
    assert rest.startswith("; the answer:\n" + answer + "\nSources:")


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (status(401), "rejected the API key (401)"),
        (status(503, times=None), "(503)"),
    ],
)
def test_llm_failures_end_in_one_line(
    index_dir: Path, llm_server: LLMServer, behaviour: object, message: str
) -> None:
    llm_server.queue(behaviour)
    code, out, err = ask(index_dir, llm_server.base_url, "--timeout", "5")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_unreachable_server(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_LLM_MAX_RETRIES", "0")
    code, out, err = ask(index_dir, closed_port_url())
    assert code == 1 and out == ""
    assert err.startswith("error: cannot reach the LLM server at ") and err.count("\n") == 1


def test_broken_stream_is_shown_as_incomplete(index_dir: Path, llm_server: LLMServer) -> None:
    llm_server.queue(break_stream(2, ["영업손실 폭이 ", "1406억원으로 ", "증가했다 [1]."]))
    code, out, err = ask(index_dir, llm_server.base_url)
    assert code == 1
    assert out == "영업손실 폭이 1406억원으로 \n[answer incomplete]\n"
    assert err.startswith("error: the LLM stream broke after ") and "incomplete" in err


def test_ctrl_c_cancels_the_answer_not_the_session(
    index_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Interrupted(FakeGenerator):
        def stream(self, messages, *, question="", passages=()):  # type: ignore[no-untyped-def]
            yield "영업손실 폭이"
            raise KeyboardInterrupt

    session = ChatSession(Index.open(index_dir), Interrupted())
    lines = iter([QUESTION, "/sources", "/quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))

    def show(stream):  # type: ignore[no-untyped-def]
        for piece in stream:
            print(piece, end="")
        return stream.answer

    run(session, show, lambda answer: print("SOURCES"))
    out = capsys.readouterr().out
    assert "영업손실 폭이\n[answer cancelled]\n" in out
    assert "No answer yet." in out  # the cancelled answer was not recorded
    assert session.turns == []


LOSS = "영업손실 폭이 368억원에서 1406억원으로 3년 만에 4배나 증가했다"


def loss_n(index_dir: Path) -> int:
    hits = Index.open(index_dir).search(QUESTION, k=5)
    return next(n for n, h in enumerate(hits, 1) if LOSS in h.text)


def test_a_loop_on_the_screen_is_followed_by_the_answer_without_it(
    index_dir: Path, llm_server: LLMServer
) -> None:
    """The copies of a loop were on the screen before it was seen and cut, with only a note
    under them: the answer is shown again without them."""
    n = loss_n(index_dir)
    sentence = f"카카오엔터프라이즈의 {LOSS} [{n}]. "
    llm_server.queue(loop(sentence, 6))
    code, out, err = ask(index_dir, llm_server.base_url)
    assert code == 0, err
    shown, _, rest = out.partition("note: the text above repeats itself")
    assert shown.count(LOSS) >= 3
    answer, _, after = rest.removeprefix("; the answer without the repeats:\n").partition("\n")
    assert answer.count(LOSS) == 1
    assert after.startswith("[answer incomplete]\n")


def test_a_cut_answer_says_so_on_a_line_of_its_own(index_dir: Path, llm_server: LLMServer) -> None:
    n = loss_n(index_dir)
    llm_server.queue(
        reply(f"카카오엔터프라이즈의 {LOSS} [{n}]. 또한 매출은", finish_reason="length")
    )
    code, out, err = ask(index_dir, llm_server.base_url, "--max-tokens", "40")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"카카오엔터프라이즈의 {LOSS} [{n}]. 또한 매출은"
    assert lines[1] == "[answer incomplete]"
    assert "note: the model reached its token limit (max_tokens 40)" in lines
    assert err == ""  # nothing glued to the answer from the log
    assert llm_server.requests[0].body["max_tokens"] == 40


def test_json_carries_complete_false(index_dir: Path, llm_server: LLMServer) -> None:
    llm_server.queue(reply("영업손실은", finish_reason="length"))
    code, out, _ = ask(index_dir, llm_server.base_url, "--json")
    data = json.loads(out)
    assert code == 0 and data["complete"] is False and data["stop_reason"] == "length"


@pytest.mark.parametrize(
    ("behaviour", "options", "stop", "message"),
    [
        (break_stream(2, ["영업손실 폭이 ", "1406억원으로 ", "증가했다 [1]."]), [], "stream",
         "error: the LLM stream broke after "),
        (reply("영업손실 폭이 " * 10, ["영업손실 폭이 "] * 10, pace=0.3), ["--deadline", "1"],
         "timeout", "error: the answer from "),
    ],
    ids=["broken", "overdue"],
)  # fmt: skip
def test_json_shows_a_failed_answer_as_incomplete(
    index_dir: Path,
    llm_server: LLMServer,
    behaviour: object,
    options: list[str],
    stop: str,
    message: str,
) -> None:
    """--json used to print nothing when the stream broke or was overdue, so the answer's
    complete: false and stop_reason could never be seen."""
    llm_server.queue(behaviour)
    code, out, err = ask(index_dir, llm_server.base_url, "--json", *options)
    assert code == 1
    data = json.loads(out)
    assert data["complete"] is False and data["stop_reason"] == stop
    assert data["text"].startswith("영업손실 폭이") and not data["verified"]
    assert err.startswith(message) and err.count("\n") == 1


def test_the_deadline_option_stops_a_slow_answer(index_dir: Path, llm_server: LLMServer) -> None:
    llm_server.queue(reply("영업손실은 " * 10, ["영업손실은 "] * 10, pace=0.3))
    code, out, err = ask(index_dir, llm_server.base_url, "--deadline", "1")
    assert code == 1
    assert out.splitlines()[-1] == "[answer incomplete]"
    assert err.startswith("error: the answer from ") and "took longer than 1 s" in err


def test_context_option_cuts_the_passages(index_dir: Path, llm_server: LLMServer) -> None:
    llm_server.queue(reply("영업손실이 늘었다 [1]."))
    code, out, err = ask(index_dir, llm_server.base_url, "-k", "6", "--context-tokens", "2000")
    assert code == 0, err
    prompt = llm_server.requests[0].messages[1]["content"]
    assert "[1] " in prompt and "[6] " not in prompt
    assert "passages shown, to fit the model's context of 2000 tokens" in out


# -- rag eval with an LLM that fails --------------------------------------------------------

GOLD = [
    {"id": "a", "question": QUESTION, "answer": "1406억원",
     "docs": [KAKAO], "facts": [["1406억원"]]},
    {"id": "b", "question": "카카오엔터프라이즈 영업손실 규모", "answer": "1406억원",
     "docs": [KAKAO], "facts": [["1406억원"]]},
    {"id": "c", "question": "카카오엔터프라이즈 영업손실 증가", "answer": "1406억원",
     "docs": [KAKAO], "facts": [["1406억원"]]},
]  # fmt: skip


def test_one_failed_answer_is_recorded_and_the_run_goes_on(
    index_dir: Path, llm_server: LLMServer
) -> None:
    from rag.backends.openai import OpenAIGenerator

    n = loss_n(index_dir)
    good = f"카카오엔터프라이즈의 {LOSS} [{n}]."
    llm_server.queue(reply(good), status(500), reply(good))
    generator = OpenAIGenerator(base_url=llm_server.base_url, model="m", max_retries=0)
    result = evaluate(Index.open(index_dir), GOLD, answerer=generator)
    a, b, c = result.items
    assert b.error is not None and "failed (500)" in b.error and not b.passed
    assert a.error is None and c.error is None
    assert result.metrics["errors"] == 1.0 and result.denominators["errors"] == 3
    assert len(llm_server.requests) == 3


def test_an_answer_cut_short_does_not_pass(index_dir: Path, llm_server: LLMServer) -> None:
    """An answer stopped at max_tokens, or cut as a repetition loop, used to pass when what
    was kept covered the facts; the result did not say it was cut."""
    from rag.backends.openai import OpenAIGenerator

    index = Index.open(index_dir)
    good = []
    for g in GOLD:
        hits = index.search(str(g["question"]), k=5)
        n = next(n for n, h in enumerate(hits, 1) if LOSS in h.text)
        good.append(f"카카오엔터프라이즈의 {LOSS} [{n}].")
    loops = loop(good[1] + " ", 6)
    llm_server.queue(reply(good[0], finish_reason="length"), loops, reply(good[2]))
    generator = OpenAIGenerator(base_url=llm_server.base_url, model="m", max_retries=0)
    result = evaluate(index, GOLD, answerer=generator)
    a, b, c = result.items
    assert (a.passed, a.complete, a.stop_reason, a.facts) == (False, False, "length", 1.0)
    assert (b.passed, b.complete, b.stop_reason) == (False, False, "loop")
    assert (c.passed, c.complete, c.stop_reason) == (True, True, None)
    assert result.metrics["incomplete"] == 2.0 and result.metrics["errors"] == 0.0


def test_a_failed_answer_is_left_out_of_answer_first(
    index_dir: Path, llm_server: LLMServer
) -> None:
    from rag.backends.openai import OpenAIGenerator

    n = loss_n(index_dir)
    good = f"카카오엔터프라이즈의 {LOSS} [{n}]."
    llm_server.queue(reply(good), break_stream(1, ["영업손실은 ", "1406억원이다."]), reply(good))
    generator = OpenAIGenerator(base_url=llm_server.base_url, model="m", max_retries=0)
    result = evaluate(Index.open(index_dir), GOLD, answerer=generator)
    b = result.items[1]
    assert b.error is not None and (b.complete, b.stop_reason) == (False, "stream")
    assert b.answer_first is None and result.denominators["answer_first"] == 2


def test_a_server_that_stays_down_is_not_asked_every_question(index_dir: Path) -> None:
    from rag.backends.openai import OpenAIGenerator

    generator = OpenAIGenerator(base_url=closed_port_url(), model="m", max_retries=0)
    gold = GOLD + [dict(GOLD[0], id=f"x{i}") for i in range(3)]
    result = evaluate(Index.open(index_dir), gold, answerer=generator)
    errors = [i.error for i in result.items]
    assert all(e and e.startswith("cannot reach the LLM server") for e in errors[:3])
    assert errors[3:] == ["not asked after 3 failed answers in a row"] * 3
    assert result.metrics["errors"] == 6.0 and result.metrics["pass_rate"] == 0.0


def test_rag_eval_writes_the_report_then_exits_3(
    index_dir: Path, llm_server: LLMServer, tmp_path: Path
) -> None:
    from rag.cli import app

    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(g, ensure_ascii=False) for g in GOLD), encoding="utf-8")
    llm_server.queue(reply("영업손실은 1406억원이다 [1]."), delay(5), reply("모른다 [1]."))
    args = ["eval", str(gold), "--index", str(index_dir), "--llm", "openai", "--model", "m"]
    args += ["--base-url", llm_server.base_url, "--timeout", "0.5", "--report", str(tmp_path / "r")]
    result = CliRunner(env={"RAG_LLM_MAX_RETRIES": "0"}).invoke(app, args)
    assert result.exit_code == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert errors == [
        f"error: question b: LLM at {llm_server.base_url} did not answer within 0.5 s"
    ]
    assert "errors                       1     3  answers" in result.stdout
    assert (tmp_path / "r" / "report.md").exists()


def test_a_run_with_failed_answers_does_not_replace_the_baseline(
    index_dir: Path, tmp_path: Path
) -> None:
    """`--update-baseline` with the LLM server down wrote a baseline of zeros (pass rate 0,
    no question passing), against which every later run passed the gate."""
    from rag.baseline import make_baseline
    from rag.cli import app
    from rag.errors import RagError

    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(g, ensure_ascii=False) for g in GOLD), encoding="utf-8")
    baseline = tmp_path / "b.json"
    extractive = ["eval", str(gold), "--index", str(index_dir), "--baseline", str(baseline)]
    assert CliRunner().invoke(app, [*extractive, "--update-baseline"]).exit_code == 0
    kept = baseline.read_bytes()
    down = [*extractive, "--update-baseline", "--llm", "openai", "--model", "m"]
    result = CliRunner(env={"RAG_LLM_MAX_RETRIES": "0"}).invoke(
        app, [*down, "--base-url", closed_port_url()]
    )
    assert result.exit_code == 3
    assert f"3 answers failed; {baseline} not updated" in result.stderr
    assert "Wrote baseline" not in result.stderr and baseline.read_bytes() == kept

    from rag.backends.openai import OpenAIGenerator

    generator = OpenAIGenerator(base_url=closed_port_url(), model="m", max_retries=0)
    failed = evaluate(Index.open(index_dir), GOLD, answerer=generator)
    with pytest.raises(RagError, match="cannot make a baseline from a run where 3 of 3 answers"):
        make_baseline(failed)


def test_an_answer_citing_nothing_does_not_pass() -> None:
    from rag.evaluate import GoldItem

    item = GoldItem(id="q", question="?", answer="1406억원", facts=[["1406억원"]], docs=[KAKAO])
    assert not score(item, "영업손실은 1406억원이다.", False, citations=[]).passed
    from rag.evaluate import CitedPassage

    cited = [CitedPassage(n=1, doc_id=KAKAO, verified=True)]
    assert score(item, "영업손실은 1406억원이다 [1].", False, citations=cited).passed
    assert not score(
        item, "1406억원이다 [1]. 추측이다.", False, citations=cited, unsupported=1
    ).passed
