"""The index kept in Milvus (``--store``, `rag.milvus`, `rag.milvus_index`).

Milvus is milvus-lite 3.x, started by each test inside the test process on a database under
``tmp_path`` and stopped at its end. The KorQuAD test embeds with the real onnx-int8 runtime:
``$RAG_TEST_MODEL_DIR`` if it holds one, else one built once for the module (about a minute).

Run with ``pytest -m milvus`` after ``pip install -e ".[milvus,test]"``; the Ray suite
(``pytest -m ray``) also runs the one that indexes on Ray into milvus-lite. The tests at the
end need no Milvus and run in the quick suite.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import Index
from rag.cli import app
from rag.errors import EmbedderMismatch, InvalidOption, RagError
from rag.milvus import parse
from rag.milvus_schema import filter_expression
from tests.conftest import FLITTO, KAKAO, ROOT, korquad_paragraphs

PARAGRAPHS = 40
QUESTION = "카카오엔터프라이즈는 왜 구조조정되었나?"


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[str]:
    """A milvus-lite database on tmp_path, as a ``--store`` value; its server is stopped at
    the end of the test."""
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    from milvus_lite.server_manager import server_manager_instance

    path = tmp_path / "milvus" / "rag.db"
    yield f"milvus-lite:{path}"
    server_manager_instance.release_server(str(path))


def cli(*args: str, input: str | None = None) -> tuple[int, str]:
    """Exit code, and stdout of a --json run that succeeded (progress goes to stderr), else
    all output."""
    result = CliRunner().invoke(app, list(args), input=input)
    json_out = "--json" in args and result.exit_code == 0
    output = result.stdout if json_out else result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += "".join(traceback.format_exception(result.exception))
    return result.exit_code, output


def _chunks(chunks: list) -> list[tuple]:
    keys = ("chunk_id", "doc_id", "start", "end", "tokens", "hash", "text")
    return sorted(tuple(getattr(c, k) for k in keys) for c in chunks)


@pytest.mark.milvus
def test_python_api_round_trip(lite: str, seeds: Path, tmp_path: Path) -> None:
    index = Index.create(store=lite, embedder="fake")
    report = index.add([seeds])
    assert sorted(report.added) == [FLITTO, KAKAO] and report.chunks_embedded > 0

    # The same chunks as a local index of the same files (the BM25 terms as \w+ tokens).
    local = Index.create(tmp_path / "local", embedder="fake")
    local.add([seeds])
    stored = index.store.chunks()  # type: ignore[attr-defined]
    assert _chunks(stored) == _chunks(list(local._snap.records.all_chunks()))
    assert [d.model_dump(exclude={"indexed_at"}) for d in index.documents()] == [
        d.model_dump(exclude={"indexed_at"}) for d in local.documents()
    ]

    hits = index.search("카카오엔터프라이즈 구조조정 이유", k=3)
    assert hits[0].doc_id == KAKAO and hits[0].dense_score is not None
    assert hits[0].chunk_id == local.search("카카오엔터프라이즈 구조조정 이유", k=1)[0].chunk_id
    # Filters run in Milvus: the Kakao article is from 2023-05-16 (no outlet), the Flitto one
    # from 디지털데일리 (no date).
    assert index.search("카카오", since="2023-05-17") == []
    assert {h.doc_id for h in index.search("카카오", until="2023-05-16", k=10)} == {KAKAO}
    assert {h.doc_id for h in index.search("카카오", source="디지털데일리", k=10)} == {FLITTO}
    assert index.search("카카오", source="없는 신문") == []
    for fusion in ("dense", "bm25", "rrf"):
        assert index.search("카카오엔터프라이즈 구조조정", k=1, fusion=fusion)[0].doc_id == KAKAO
    # Kiwi reads "플리토의" as one word: both stores search for 플리토, which they hold.
    glued = "플리토의 AI 데이터 수출"
    assert [h.chunk_id for h in index.search(glued, k=3, fusion="bm25")] == [
        h.chunk_id for h in local.search(glued, k=3, fusion="bm25")
    ]

    answer = index.ask(QUESTION)
    assert not answer.refused and answer.citations
    assert {c.doc_id for c in answer.citations} == {KAKAO}

    info = index.info()
    assert (info.documents, info.chunks) == (2, len(stored))
    assert info.first_date == info.last_date == dt.date(2023, 5, 16)
    assert info.sources == {"디지털데일리": 1} and info.path == lite
    assert index.check() == (2, [])

    # Opened again: the manifest's embedder is checked; nothing new is embedded.
    again = Index.open(store=lite, embedder="fake")
    rerun = again.add([seeds])
    assert (rerun.added, rerun.updated, rerun.chunks_embedded) == ([], [], 0)
    assert len(rerun.unchanged) == 2
    with pytest.raises(EmbedderMismatch):
        Index.open(store=lite, embedder="fake:b").search("카카오")

    assert again.remove(str(seeds / f"{FLITTO}.txt")) == [FLITTO]
    assert [d.doc_id for d in again.documents()] == [KAKAO]
    assert again.remove(KAKAO) == [KAKAO] and len(again) == 0
    with pytest.raises(RagError, match="no indexed document matches"):
        again.remove(KAKAO)


@pytest.mark.milvus
def test_an_edit_embeds_only_changed_chunks(lite: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    text = "\n".join(f"문장 {i}번은 시험을 위해 쓴 서로 다른 긴 문장이다. " * 3 for i in range(40))
    (folder / "a.txt").write_text(text, encoding="utf-8")
    index = Index.create(store=lite, embedder="fake")
    first = index.add([folder])
    (folder / "a.txt").write_text(text + "\n끝에 덧붙인 새 문장이다.", encoding="utf-8")
    edited = index.add([folder])
    assert edited.updated == first.added == ["a"]
    assert 1 <= edited.chunks_embedded < first.chunks_embedded
    assert edited.chunks_reused + edited.chunks_embedded == index.info().chunks
    assert index.check() == (1, [])


@pytest.mark.milvus
def test_an_interrupted_add_is_completed_by_running_it_again(
    lite: str, seeds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag import milvus
    from rag.milvus_index import StoreInterrupted

    index = Index.create(store=lite, embedder="fake")
    insert = milvus.Store._insert

    def interrupted(self: milvus.Store, name: str, rows: list) -> None:
        if name == self.docs_name:  # the chunks are in, the article rows not yet
            raise KeyboardInterrupt
        insert(self, name, rows)

    monkeypatch.setattr(milvus.Store, "_insert", interrupted)
    with pytest.raises(StoreInterrupted, match="run the same command again"):
        index.add([seeds])
    monkeypatch.setattr(milvus.Store, "_insert", insert)
    count, problems = index.check()
    assert count == 0 and problems and "not indexed" in problems[0]
    assert index.search("카카오엔터프라이즈") == []  # chunks without their article are not shown
    report = index.add([seeds])
    assert len(report.added) == 2 and index.check() == (2, [])


@pytest.mark.milvus
def test_ctrl_c_once_an_add_or_remove_is_done_says_saved(
    lite: str, seeds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the report prints: this said "the index on disk was not changed" of a stored change.
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("rag.output.print_report", interrupted)
    code, out = cli("index", str(seeds), "--store", lite, "--embedder", "fake")
    assert code == 130
    assert out.endswith("was updated; the changes are saved\n"), out
    assert Index.open(store=lite).check() == (2, [])
    monkeypatch.setattr("rag.output.print_json", interrupted)
    code, out = cli("remove", "004_9dd825083520fc60", "--store", lite, "--json")
    assert (code, out.splitlines()[-1]) == (
        130,
        f"error: interrupted after the index at {Path(lite)} was updated; the changes are saved",
    )
    assert Index.open(store=lite).check() == (1, [])


@pytest.mark.milvus
def test_a_collection_that_is_not_an_index_is_left_alone(lite: str) -> None:
    from pymilvus import MilvusClient

    path = lite.removeprefix("milvus-lite:")
    Path(path).parent.mkdir(parents=True)
    client = MilvusClient(uri=path)
    client.create_collection("rag", dimension=4)
    with pytest.raises(RagError, match="'rag' is not a rag index"):
        Index.open(store=lite)
    with pytest.raises(RagError, match="already exists"):
        Index.create(store=lite, embedder="fake")
    assert client.has_collection("rag")


@pytest.mark.milvus
def test_cli_round_trip(lite: str, seeds: Path, tmp_path: Path) -> None:
    code, out = cli("index", str(seeds), "--store", lite, "--embedder", "fake")
    assert code == 0, out
    assert f"into {lite} in" in out and "added 2" in out
    code, out = cli("search", "카카오", "--store", lite, "--source", "디지털데일리", "--json")
    assert code == 0, out
    assert {h["doc_id"] for h in json.loads(out)} == {FLITTO}
    code, out = cli("ask", QUESTION, "--store", lite, "--json")
    assert code == 0, out
    assert json.loads(out)["citations"][0]["doc_id"] == KAKAO
    code, out = cli("chat", "--store", lite, input=f"{QUESTION}\n/quit\n")
    assert code == 0, out
    assert "영업손실 폭이 368억원에서 1406억원으로" in out  # quoted from the Kakao article
    gold = tmp_path / "gold.jsonl"
    lines = (ROOT / "evals" / "seeds_gold.jsonl").read_text(encoding="utf-8").splitlines()
    gold.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    code, out = cli("eval", str(gold), "--store", lite, "--json")
    assert code == 0, out
    assert [i["id"] for i in json.loads(out)["items"]] == ["seed-01", "seed-02", "seed-03"]
    code, out = cli("info", "--store", lite, "--check")
    assert code == 0, out
    assert f"index      {lite}\n" in out and "all 2 articles have all their chunks" in out

    code, out = cli("index", str(seeds), "--store", lite, "--json")  # again: nothing new
    assert code == 0, out
    report = json.loads(out)
    assert (report["added"], report["chunks_embedded"], len(report["unchanged"])) == ([], 0, 2)
    code, out = cli("remove", FLITTO, "--store", lite)
    assert (code, out) == (0, f"Removed 1 document(s): {FLITTO}\n")
    code, out = cli("info", "--store", lite, "--json")
    assert json.loads(out)["documents"] == 1
    assert not (tmp_path / "index").exists()  # $RAG_INDEX was not touched


@pytest.mark.milvus
def test_cli_errors(lite: str, seeds: Path, tmp_path: Path) -> None:
    missing = f"milvus-lite:{tmp_path / 'none.db'}"
    code, out = cli("search", "카카오", "--store", missing)
    assert (code, out) == (
        1,
        f"error: no index at {missing} (create one with: rag index PATH --store {missing})\n",
    )
    assert not (tmp_path / "none.db").exists()
    code, out = cli("search", "카카오", "--store", "milvus://127.0.0.1:1")
    assert code == 1
    assert out.startswith("error: cannot reach Milvus at milvus://127.0.0.1:1: ")
    assert out.count("\n") == 1  # one line, no traceback
    # An index that received nothing is not left behind.
    code, out = cli("index", str(tmp_path / "typo"), "--store", lite, "--embedder", "fake")
    assert code == 1 and out.startswith("error: no such file or directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = cli("index", str(empty), "--store", lite, "--embedder", "fake")
    assert code == 1, out
    code, out = cli("info", "--store", lite)
    assert code == 1 and out.startswith("error: no index at")
    # A file of the database's name is someone else's (milvus-lite's is a folder): left as
    # it is, in one line (milvus-lite logged a traceback of its own first).
    notes = tmp_path / "notes.db"
    notes.write_text("my notes")
    for args in (["search", "카카오"], ["index", str(seeds)]):
        code, out = cli(*args, "--store", f"milvus-lite:{notes}")
        assert (code, out) == (1, f"error: {notes} is a file, not a Milvus Lite database\n")
    assert notes.read_text() == "my notes"


@pytest.mark.milvus
def test_remove_refuses_an_empty_or_ambiguous_name(
    lite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As for a directory (tests/test_index.py): "" names the working directory.
    monkeypatch.chdir(tmp_path)
    for name in ("news/a.txt", "other/news.txt"):
        Path(name).parent.mkdir(exist_ok=True)
        Path(name).write_text(f"{name} 기사. 반도체 수출이 늘었다.")
    index = Index.create(store=lite, embedder="fake")
    index.add([Path("news"), Path("other")])
    for name, message in [("", "an empty name"), ("news", "both")]:
        with pytest.raises(RagError, match=message):
            index.remove(name)
    assert sorted(d.doc_id for d in index.documents()) == ["a", "news"]
    with pytest.raises(RagError, match="would remove all 2 documents"):  # "./$DIR", DIR unset
        index.remove("./")
    code, out = cli("remove", "", "--store", lite)
    assert (code, out) == (1, "error: an empty name matches no document; give a doc id or a path\n")
    shutil.rmtree("news")  # and once the folder is deleted, "news" is still both
    with pytest.raises(RagError, match="both"):
        index.remove("news")
    assert index.remove("./news") == ["a"]


@pytest.mark.milvus
def test_a_file_edited_to_repeat_another_article_loses_its_earlier_text(
    lite: str, tmp_path: Path
) -> None:
    # As for a directory (tests/test_index.py): its earlier text is no document's any more.
    news = tmp_path / "news"
    news.mkdir()
    (news / "a.txt").write_text("서울시는 새 교통 정책을 발표했다. 버스 요금이 오른다.")
    (news / "b.txt").write_text("부산에서 국제 영화제가 개막했다. 관객이 몰렸다.")
    index = Index.create(store=lite, embedder="fake")
    index.add([news])
    (news / "a.txt").write_bytes((news / "b.txt").read_bytes())
    assert index.add([news]).removed == ["a"]
    assert [d.doc_id for d in index.documents()] == ["b"]


@pytest.mark.milvus
def test_an_article_milvus_cannot_hold_is_skipped_before_anything_is_deleted(
    lite: str, tmp_path: Path
) -> None:
    def write(records: list[dict]) -> None:
        lines = [json.dumps(r, ensure_ascii=False) for r in records]
        (tmp_path / "in" / "x.jsonl").write_text("\n".join(lines), encoding="utf-8")

    def text(i: int) -> str:
        return f"서울시는 {i}번째 정책을 발표했다. 시민들은 이번 발표에 관심을 보였다."

    (tmp_path / "in").mkdir()
    write([{"id": i, "text": text(n)} for n, i in enumerate("abc")])
    index = Index.create(store=lite, embedder="fake")
    index.add([tmp_path / "in"])
    # pymilvus pages its reads by primary key without escaping it ("x\" or pk > \"0" widened
    # a page to other articles), and a row over Milvus's length limits failed its batch
    # after the batch's old chunks were deleted: a, b and c lost theirs.
    bad = ['x" or pk > "0', "back\\slash", "L" * 4200]
    write([{"id": i, "text": text(n) + " 수정된 문장."} for n, i in enumerate([*"abc", *bad])])
    report = index.add([tmp_path / "in"])
    assert sorted(report.updated) == ["a", "b", "c"] and not report.added
    assert [s.reason.split(",")[0] for s in report.skipped] == [
        'a doc id holding "',
        'a doc id holding "',
        "a doc id longer than 4",
    ]
    assert index.check()[1] == [] and len(index) == 3
    assert all("수정된" in d.text for d in index.documents())


@pytest.mark.milvus
def test_a_new_index_another_run_wrote_into_is_not_dropped(
    lite: str, seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two `rag index --store` runs on a new index: this one finds no article to add, and
    # meanwhile the other one opens the index this one created and adds the seeds.
    create = Index.create

    def create_then_another_writes(*args, **kwargs):  # type: ignore[no-untyped-def]
        index = create(*args, **kwargs)
        Index.open(store=lite).add([seeds])
        return index

    monkeypatch.setattr(Index, "create", create_then_another_writes)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = cli("index", str(empty), "--store", lite, "--embedder", "fake")
    assert code == 1, out
    monkeypatch.undo()
    assert len(Index.open(store=lite)) == 2


@pytest.mark.milvus
def test_korquad_top1_matches_the_local_index(
    lite: str, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's check: the same KorQuAD paragraphs indexed locally and into milvus-lite
    give the same top-1 for at least 95% of their questions (measured: 287 of 288)."""
    monkeypatch.setenv("RAG_MODEL_DIR", str(model_dir))
    records, pairs = korquad_paragraphs(PARAGRAPHS)
    questions = [q for q, _ in pairs]
    file = tmp_path / "korquad.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
    file.write_text("".join(lines), encoding="utf-8")
    local = Index.create(tmp_path / "local", embedder="onnx-int8")
    local.add([file])
    remote = Index.create(store=lite, embedder="onnx-int8")
    report = remote.add([file])
    assert len(report.added) == PARAGRAPHS
    assert report.chunks_embedded == len(local._snap.vectors)
    same = sum(
        remote.search(q, k=1)[0].chunk_id == local.search(q, k=1)[0].chunk_id for q in questions
    )
    assert len(questions) == 288
    assert same / len(questions) >= 0.95, f"same top-1 for {same} of {len(questions)}"


@pytest.mark.ray  # in the Ray suite: it starts a cluster (about a minute more)
def test_ray_indexes_into_milvus(
    lite: str, model_dir: Path, seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--ray local:2 --store ...`: read, chunk and embed on a 2-node Ray cluster started here
    (rag.cluster: 127.0.0.1, token authentication), insert into milvus-lite."""
    pytest.importorskip("ray.data")  # `lite` needs pymilvus and milvus-lite
    monkeypatch.setenv("RAG_MODEL_DIR", str(model_dir))
    args = ["--store", lite, "--embedder", "onnx-int8", "--json"]
    code, out = cli("index", str(seeds), "--ray", "local:2", *args)
    assert code == 0, out
    report = json.loads(out)
    assert sorted(report["added"]) == [FLITTO, KAKAO] and report["chunks_embedded"] > 0
    local = Index.create(tmp_path / "local", embedder="onnx-int8")
    local.add([seeds])
    stored = Index.open(store=lite).store.chunks()  # type: ignore[attr-defined]
    assert _chunks(stored) == _chunks(list(local._snap.records.all_chunks()))


# -- no Milvus needed: the quick suite -------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "address", "collection", "dense"),
    [
        ("milvus://10.0.0.1:19530", "http://10.0.0.1:19530", "rag", "HNSW"),
        ("milvus://db.example:19530/news_2024", "http://db.example:19530", "news_2024", "HNSW"),
        ("milvus://h:19530/news?index=ivf_sq8", "http://h:19530", "news", "IVF_SQ8"),
        ("milvus-lite:x/rag.db", str(Path("x/rag.db").absolute()), "rag", "HNSW"),
    ],
)
def test_store_addresses(uri: str, address: str, collection: str, dense: str) -> None:
    location = parse(uri)
    assert (location.address, location.collection, location.dense_index) == (
        address,
        collection,
        dense,
    )


@pytest.mark.parametrize(
    "uri",
    ["milvus://host", "milvus://h:0", "milvus://h:19530/9bad", "milvus-lite:x.sqlite", "x.db"],
)
def test_bad_store_addresses(uri: str) -> None:
    with pytest.raises(InvalidOption):
        parse(uri)
    code, out = cli("search", "카카오", "--store", uri)
    assert code == 2 and "Invalid value for '--store'" in out


def test_filters_are_milvus_expressions_with_quoted_values() -> None:
    since, until = dt.date(2024, 1, 2), dt.date(2024, 12, 31)
    assert filter_expression(since, until, 'KBS "뉴스"\\') == (
        'date >= 20240102 and date > 0 and date <= 20241231 and outlet == "kbs \\"뉴스\\"\\\\"'
    )
    assert filter_expression(None, None, None) == ""


def test_without_pymilvus_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pymilvus" else find_spec(name, *a),
    )
    (tmp_path / "rag.db").mkdir()
    code, out = cli("search", "카카오", "--store", f"milvus-lite:{tmp_path / 'rag.db'}")
    assert (code, out) == (
        1,
        'error: serving from Milvus needs the milvus extra: pip install "kornews-rag[milvus]"\n',
    )


def test_rag_and_a_local_index_do_not_import_pymilvus(seeds: Path, tmp_path: Path) -> None:
    script = f"""
import sys
from rag import Index
from rag.backends import register_backend
from rag.cli import app
from tests.conftest import FakeEmbedder
register_backend("fake", FakeEmbedder)
Index.create({str(tmp_path / "i")!r}, embedder="fake").add([{str(seeds)!r}])
print(sorted(m for m in sys.modules if m.split(".")[0] in ("pymilvus", "milvus_lite")))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout == "[]\n"
