"""Format-4 segments (`rag.segments`): after any adds and removes an index searches exactly
like a fresh build of the same articles; adding keeps the earlier segments' files, removing
writes none; format-3 indexes are read and converted."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag import Index, store

FORMAT3 = Path(__file__).parent / "data" / "format3-index"
WORDS = (
    "카카오 반도체 수출 삼성전자 현대차 전기차 배터리 금리 환율 주가 정부 예산 선거 국회".split()
)
OUTLETS = ["연합뉴스", "가나일보", "다라신문", None]
QUERIES = ["반도체 수출", "카카오 금리", "전기차 배터리 정부", "선거 국회 예산", "주가"]


def _record(rng: random.Random, i: int, version: int) -> dict[str, Any]:
    sentences = [
        " ".join(rng.choices(WORDS, k=rng.randint(3, 8))) + f" {i}번 기사 {version}판이다."
        for _ in range(rng.randint(1, 6))
    ]
    record: dict[str, Any] = {"id": f"d{i}", "title": f"기사 {i}", "text": "\n".join(sentences)}
    if source := rng.choice(OUTLETS):
        record["source"] = source
    if rng.random() < 0.8:
        record["date"] = f"20{rng.randint(15, 24)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
    return record


def _results(index: Index) -> list[Any]:
    out: list[Any] = []
    for query in QUERIES:
        for fusion in ("convex", "rrf", "bm25", "dense"):
            for filters in ({}, {"since": "2019-01-01"}, {"source": "가나일보"}):
                hits = index.search(query, k=5, fusion=fusion, **filters)  # type: ignore[arg-type]
                out.append([(h.chunk_id, round(h.score, 5), h.text) for h in hits])
    return out


@pytest.mark.parametrize(("seed", "ann"), [(0, False), (1, False), (2, True), (3, True)])
def test_random_adds_and_removes_search_like_a_fresh_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, ann: bool
) -> None:
    rng = random.Random(seed)
    if ann:  # every candidate list scanned (nprobe = nlist): the same top k as exact search
        monkeypatch.setenv("RAG_ANN_THRESHOLD", "15")
    index = Index.create(tmp_path / "grown", embedder="fake")
    current: dict[str, dict[str, Any]] = {}  # in the order the index holds them
    version, compared_with_ann = 0, 0
    for round_ in range(12):
        version += 1
        if current and rng.random() < 0.35:
            gone = rng.sample(sorted(current), rng.randint(1, max(1, len(current) // 3)))
            index.remove(gone)
            for doc_id in gone:
                del current[doc_id]
        else:
            batch = []
            for _ in range(rng.choice([1, 3, 8, 20])):
                i = rng.randrange(60)  # some new, some updates of indexed articles
                batch.append(_record(rng, i, version))
            batch = list({r["id"]: r for r in batch}.values())
            index.add(batch)
            for r in batch:
                current.pop(r["id"], None)
                current[r["id"]] = r
        if round_ % 3 != 2 or not current:
            continue
        monkeypatch.setenv("RAG_ANN_THRESHOLD", "1000000")
        fresh = Index.create(tmp_path / f"fresh-{round_}", embedder="fake")
        fresh.add(list(current.values()))
        if ann:
            monkeypatch.setenv("RAG_ANN_THRESHOLD", "15")
        grown = Index.open(index.path)
        assert [d.doc_id for d in grown.documents()] == list(current)
        assert grown.info().chunks == fresh.info().chunks
        assert grown.info().sources == fresh.info().sources
        assert _results(grown) == _results(fresh)
        compared_with_ann += grown._snap.ann is not None
    assert store.read_manifest(index.path).format_version == 4
    assert compared_with_ann > 0 if ann else compared_with_ann == 0


def _articles(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"id": f"n{i}", "text": f"{i}번째 기사. 카카오 반도체 수출이 {i}년 만에 늘었다."}
        for i in range(start, start + n)
    ]


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def test_adding_keeps_the_earlier_segment_and_writes_only_the_new_chunks(tmp_path: Path) -> None:
    index = Index.create(tmp_path / "idx", embedder="fake")
    index.add(_articles(40))
    (first,) = store.read_manifest(index.path).segments
    files = {n: _identity(index.path / first / n) for n in ("records.sqlite", "vectors.npy")}
    index.add(_articles(2, start=40))
    m = store.read_manifest(index.path)
    assert m.segments == [first, f"seg-{m.generation}"]
    assert {n: _identity(index.path / first / n) for n in files} == files  # not rewritten
    new = np.load(index.path / m.segments[1] / "vectors.npy")
    assert len(new) == 2 and len(Index.open(index.path)._snap.vectors) == 42
    assert index.check() == (len(m.checksums), [])


def _ids(snap: store.Snapshot) -> list[int]:
    """Each row's id in the IVF index (``None`` on the snapshot: the rows themselves)."""
    return list(range(len(snap))) if snap.ids is None else snap.ids.tolist()


def test_removing_writes_no_segment_and_renumbers_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_ANN_THRESHOLD", "20")
    index = Index.create(tmp_path / "idx", embedder="fake")
    index.add(_articles(40))
    before = store.read(index.path)
    ids = dict(zip((c.chunk_id for c in before.records.all_chunks()), _ids(before), strict=True))
    index.remove(["n3", "n17"])
    after = store.read(index.path)
    assert after.manifest.segments == before.manifest.segments
    assert after.ann is not None and after.ann.ntotal == len(after) == len(before) - 2
    kept = dict(zip((c.chunk_id for c in after.records.all_chunks()), _ids(after), strict=True))
    assert kept == {c: i for c, i in ids.items() if c not in ("n3#0", "n17#0")}
    hits = Index.open(index.path).search("3번째 기사", k=40, fusion="dense")
    assert {h.doc_id for h in hits} == {f"n{i}" for i in range(40)} - {"n3", "n17"}
    index.add(_articles(3, start=40))  # a second segment, after the one with removed chunks
    snap = store.read(index.path)
    hashes = snap.records.chunk_hashes()  # the embedding cache: live row by text hash
    assert len(hashes) == len(snap) == 41
    assert all(snap.records.chunks([row])[0].hash == h for h, row in hashes.items())


def test_format_3_index_is_searched_then_converted_by_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "old"
    shutil.copytree(FORMAT3, path)
    index = Index.open(path)
    assert index.info().format_version == 3
    before = _results(index)
    docs = [d.doc_id for d in index.documents()]
    index.add(_articles(1, start=100))
    m = store.read_manifest(path)
    assert (m.format_version, m.segments) == (4, [f"seg-{m.generation}"])
    assert sorted(p.name for p in path.iterdir()) == sorted(
        [".lock", ".readers", "manifest.json", *m.files.values(), *m.segments]
    )
    index.remove(["n100"])
    again = Index.open(path)
    assert [d.doc_id for d in again.documents()] == docs
    assert _results(again) == before
    assert again.check() == (len(store.read_manifest(path).checksums), [])
