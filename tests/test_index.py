"""The Index API with the fake embedder: identity, updates, filters, atomicity, corruption."""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag import EmbedderMismatch, Index, IndexCorrupt, IndexNotFound, RagError, config, store
from rag.errors import IndexLocked
from rag.records import Article
from tests.conftest import FLITTO, KAKAO, FakeEmbedder


def _records(n: int, source: str, date: str, topic: str) -> list[dict]:
    return [
        {
            "id": f"{source}-{i}",
            "title": f"{topic} 소식 {i}",
            "date": date,
            "source": source,
            "text": f"{topic}에 관한 {i}번째 기사다. {topic} 시장이 커진다. {i}건이다.",
        }
        for i in range(n)
    ]


def test_add_and_search_seed_articles(seeds: Path) -> None:
    index = Index.create(embedder="fake")
    report = index.add([seeds])
    assert sorted(report.added) == [FLITTO, KAKAO]
    assert report.skipped == [] and report.chunks_embedded > 2

    hits = Index.open().search("카카오엔터프라이즈 구조조정 이유", k=3)
    assert hits[0].doc_id == KAKAO
    top = hits[0]
    doc = {d.doc_id: d for d in Index.open().documents()}[KAKAO]
    assert doc.text[top.start : top.end] == top.text
    assert top.title == "사업 재조정 사활 건 카카오 … 클라우드·AI 중심 재편"
    assert str(top.date) == "2023-05-16"
    assert top.path == str(seeds / f"{KAKAO}.txt")
    assert top.chunk_id.startswith(f"{KAKAO}#")


def test_reindex_same_folder_embeds_nothing(seeds: Path) -> None:
    Index.create(embedder="fake").add([seeds])
    index = Index.open()
    report = index.add([seeds])
    assert sorted(report.unchanged) == [FLITTO, KAKAO]
    assert (report.added, report.updated, report.chunks_embedded) == ([], [], 0)


def test_edited_file_replaces_its_chunks_and_reuses_unchanged_vectors(seeds: Path) -> None:
    index = Index.create(embedder="fake")
    index.add([seeds])
    before = index.info().chunks
    path = seeds / f"{FLITTO}.txt"
    path.write_text(
        path.read_text(encoding="utf-8") + "\n플리토는 새 사업 계획을 밝혔다.\n", encoding="utf-8"
    )

    report = index.add([seeds])
    assert report.updated == [FLITTO] and report.unchanged == [KAKAO]
    assert 0 < report.chunks_embedded < before  # only the chunks whose text changed
    assert report.chunks_reused > 0
    texts = [h.text for h in index.search("플리토 새 사업 계획", k=20) if h.doc_id == FLITTO]
    assert any("새 사업 계획" in t for t in texts)
    assert len({d.doc_id for d in index.documents()}) == 2


def test_duplicate_text_under_another_name_is_indexed_once(seeds: Path) -> None:
    (seeds / "copy.txt").write_bytes((seeds / f"{KAKAO}.txt").read_bytes())
    report = Index.create(embedder="fake").add([seeds])
    assert sorted(report.added) == [FLITTO, KAKAO]
    assert [(Path(d.path).name, d.reason) for d in report.duplicates] == [
        ("copy.txt", f"duplicate of {KAKAO}")
    ]


def test_a_renamed_file_takes_its_document_along(seeds: Path) -> None:
    # Renamed, the article was skipped as a duplicate of its own document, which still
    # named the old file; removing that name (the clean-up after a rename) lost the article.
    index = Index.create(embedder="fake")
    index.add([seeds])
    (seeds / f"{KAKAO}.txt").rename(seeds / "renamed.txt")
    report = index.add([seeds])
    assert (report.updated, report.added, report.unchanged) == ([KAKAO], [], [FLITTO])
    assert report.duplicates == []
    moved = next(d for d in index.documents() if d.doc_id == KAKAO)
    assert Path(moved.path).name == "renamed.txt"
    with pytest.raises(RagError, match="no indexed document matches"):
        index.remove(str(seeds / f"{KAKAO}.txt"))
    assert len({d.doc_id for d in index.documents()}) == 2


def test_text_moved_away_from_a_document_being_replaced_is_kept(tmp_path: Path) -> None:
    # Yesterday's article moved to archive/ and a new one written under its name: the moved
    # text was skipped as a "duplicate of today", whose text this very run replaced, and so
    # vanished from the index.
    news = tmp_path / "news"
    news.mkdir()
    bus = "서울시는 새 버스 노선을 발표했다."
    festival = "대전시는 다음 달 과학축제를 연다고 밝혔다."
    (news / "today.txt").write_text(bus)
    index = Index.create(embedder="fake")
    index.add([news])
    (news / "archive").mkdir()
    (news / "today.txt").rename(news / "archive" / "2024-05-01.txt")
    (news / "today.txt").write_text(festival)
    report = index.add([news])
    assert (report.added, report.updated, report.duplicates) == (["2024-05-01"], ["today"], [])
    texts = {d.doc_id: d.text for d in index.documents()}
    assert "버스 노선" in texts["2024-05-01"] and "과학축제" in texts["today"]

    # A line inserted above others in a JSONL file without ids (its lines are keyed by
    # number): every line's text is still indexed, in one run.
    feed = tmp_path / "feed.jsonl"
    lines = [{"title": t, "text": f"{t} 소식이다. {t}에 관한 기사다."} for t in ("반도체", "조선")]
    feed.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n")
    index.add([feed])
    lines.insert(0, {"title": "철강", "text": "철강 소식이다. 철강에 관한 기사다."})
    feed.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n")
    report = index.add([feed])
    assert report.duplicates == []
    held = [d.text for d in index.documents() if d.path and d.path.startswith(str(feed))]
    assert sorted(held) == sorted(r["text"] for r in lines)
    # A line repeating another is reported by its line ("feed.jsonl: duplicate of feed").
    feed.write_text(feed.read_text() + json.dumps(lines[0], ensure_ascii=False) + "\n")
    [duplicate] = index.add([feed]).duplicates
    assert duplicate.path == f"{feed}:4"


def test_an_id_updates_only_the_document_its_own_file_made(tmp_path: Path) -> None:
    # A record "001" updated the document of news/001.txt; two feeds numbering their records
    # 1, 2, 3 updated each other's documents, losing one feed's articles, and two of them
    # edited in one run failed with a UNIQUE constraint, in every run after.
    (tmp_path / "news").mkdir()
    (tmp_path / "news" / "001.txt").write_text(
        "서울시는 오늘 새 교통 정책을 발표했다. 버스 요금이 오른다."
    )
    index = Index.create(embedder="fake")
    index.add([tmp_path / "news"])
    feeds = {name: tmp_path / f"{name}.jsonl" for name in ("chosun", "hani")}

    def write(edit: str = "") -> None:
        for name, feed in feeds.items():
            rows = [
                {"id": i, "text": f"{name} {i}번 기사다. {edit}{name} 소식이다."} for i in (1, 2)
            ]
            rows.append({"id": "001", "text": f"{name} 영화제가 개막했다. 관객이 몰렸다."})
            feed.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))

    write()
    assert len(index.add(feeds.values()).added) == 6
    report = index.add(feeds.values())
    assert (len(report.unchanged), report.duplicates) == (6, [])
    write("(정정) ")
    assert len(index.add(feeds.values()).updated) == 4
    texts = sorted(d.text for d in index.documents())
    assert len(texts) == 7 and any("교통 정책" in t for t in texts)
    assert sum("(정정)" in t for t in texts) == 4


def test_records_without_ids_added_one_call_at_a_time_are_each_kept(tmp_path: Path) -> None:
    # Keyed by their position in the call, each call's first record replaced the last.
    index = Index.create(embedder="fake")
    for topic in ("교통", "영화제", "반도체"):
        index.add([{"title": topic, "text": f"{topic}에 관한 기사다. {topic} 소식이 이어졌다."}])
    assert sorted(d.title for d in index.documents()) == ["교통", "반도체", "영화제"]
    # The same text again is the same article.
    report = index.add([{"title": "교통", "text": "교통에 관한 기사다. 교통 소식이 이어졌다."}])
    assert (report.added, len(report.unchanged)) == ([], 1)
    # Two ready articles of one key and different texts, twice: one document each, where
    # two updates of one document failed (UNIQUE constraint) on every run.
    texts = ["첫 기사의 본문이다. 내용이 있다.", "둘째 기사의 본문이다. 내용이 다르다."]
    for repeat, run in enumerate(("", "", " 고쳤다.", " 고쳤다.")):
        same_key = [
            Article(
                key="mine",
                doc_id="a",
                text=t + run,
                content_hash=hashlib.sha256((t + run).encode()).hexdigest(),
            )
            for t in texts
        ]
        before = {d.doc_id for d in index.documents()}
        report = index.add(same_key)
        if repeat % 2:  # the same articles again change nothing (each run removed one and
            # added it again under another id)
            assert (len(report.unchanged), report.added, report.removed) == (2, [], [])
            assert {d.doc_id for d in index.documents()} == before
    assert sum(d.text.endswith("고쳤다.") for d in index.documents()) == 2
    # Ready articles given no hash are not one another's duplicates (the second was skipped).
    report = Index.create(tmp_path / "given", embedder="fake").add(
        [Article(key=f"k{i}", text=t, content_hash="") for i, t in enumerate(texts)]
    )
    assert (len(report.added), report.duplicates) == (2, [])


def test_a_file_edited_to_repeat_another_article_loses_its_earlier_text(tmp_path: Path) -> None:
    # a.txt made equal to b.txt was skipped as a duplicate of b, and its document kept the
    # text a.txt no longer held: a search still found it under a.txt.
    news = tmp_path / "news"
    news.mkdir()
    (news / "a.txt").write_text("서울시는 새 교통 정책을 발표했다. 버스 요금이 오른다.")
    (news / "b.txt").write_text("부산에서 국제 영화제가 개막했다. 관객이 몰렸다.")
    index = Index.create(embedder="fake")
    index.add([news])
    (news / "a.txt").write_bytes((news / "b.txt").read_bytes())
    report = index.add([news])
    assert report.removed == ["a"] and report.updated == []
    [duplicate] = report.duplicates
    assert duplicate.reason == "duplicate of b; its earlier text (a) is removed"
    assert [d.doc_id for d in index.documents()] == ["b"]
    assert all("교통" not in h.text for h in index.search("교통 정책", k=5))
    # Edited again, it is an article of its own.
    (news / "a.txt").write_text("대전시는 과학축제를 연다. 축제는 일주일 열린다.")
    assert index.add([news]).added == ["a"]


def test_article_text_passed_as_a_path_is_skipped_and_the_rest_indexed(seeds: Path) -> None:
    # A str of over 255 bytes (text meant as a record) raised OSError, indexing nothing.
    text = "카카오엔터프라이즈가 클라우드 사업에 집중한다고 밝혔다. " * 8
    report = Index.create(embedder="fake").add([seeds, text])
    assert sorted(report.added) == [FLITTO, KAKAO]
    assert [s.reason for s in report.skipped] == ["File name too long"]


def test_jsonl_ids_are_kept_and_updated_in_place(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    rows = _records(3, "한겨레", "2023-01-05", "반도체")
    feed.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    index = Index.create(embedder="fake")
    assert index.add([feed]).added == ["한겨레-0", "한겨레-1", "한겨레-2"]

    rows[1]["text"] = "반도체 수출이 줄었다는 정정 기사다."
    feed.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    report = index.add([feed])
    assert report.updated == ["한겨레-1"]
    assert sorted(report.unchanged) == ["한겨레-0", "한겨레-2"]

    # A byline added later is metadata too: the article is updated, not left unchanged.
    rows[2]["reporter"] = "김하늘 기자"
    feed.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    assert index.add([feed]).updated == ["한겨레-2"]
    [hit] = [h for h in index.search("반도체", k=3) if h.doc_id == "한겨레-2"]
    assert hit.reporter == "김하늘" and hit.byline == "김하늘 기자"

    # So is a publish time corrected within the day (the date stays 2023-01-05); it is
    # stored, so the next run finds the article unchanged.
    rows[0]["date"] = "2023-01-05T09:30:00+09:00"
    feed.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    assert index.add([feed]).updated == ["한겨레-0"]
    rows[0]["date"] = "2023-01-05T11:00:00+09:00"
    feed.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    report = index.add([feed])
    assert report.updated == ["한겨레-0"] and report.chunks_embedded == 0
    assert index.add([feed]).updated == []


def test_records_in_memory() -> None:
    index = Index.create(embedder="fake")
    report = index.add(_records(2, "연합뉴스", "2024-03-01", "전기차"))
    assert report.added == ["연합뉴스-0", "연합뉴스-1"]
    assert index.search("전기차", k=1)[0].source == "연합뉴스"


def test_filters_apply_before_ranking() -> None:
    index = Index.create(embedder="fake")
    # 30 articles of one outlet match the query far better than the 3 of the other.
    index.add(_records(30, "A일보", "2020-01-01", "반도체 수출"))
    index.add(_records(3, "B신문", "2023-06-01", "반도체"))

    assert {h.source for h in index.search("반도체 수출", k=5)} == {"A일보"}
    by_source = index.search("반도체 수출", k=5, source="b신문")
    assert len(by_source) == 3 and {h.source for h in by_source} == {"B신문"}
    by_date = index.search("반도체 수출", k=5, since="2023-01-01")
    assert len(by_date) == 3 and {h.source for h in by_date} == {"B신문"}
    assert index.search("반도체 수출", k=5, until="2019-12-31") == []
    assert len(index.search("반도체 수출", k=50, until="2020-01-01")) == 30


def test_remove_by_id_and_by_path(seeds: Path) -> None:
    index = Index.create(embedder="fake")
    index.add([seeds])
    assert index.remove(KAKAO) == [KAKAO]
    assert [d.doc_id for d in Index.open().documents()] == [FLITTO]
    assert index.remove(str(seeds)) == [FLITTO]
    assert len(Index.open()) == 0 and Index.open().search("카카오") == []
    with pytest.raises(RagError, match="no indexed document matches 'nope'"):
        index.remove("nope")


def test_remove_folder_spares_sibling_folders(tmp_path: Path) -> None:
    """Removing folder a/b takes a/b/x.txt and a/b/c/y.txt, not a/bc/z.txt or a/b-old/w.txt."""
    names = ["b/x.txt", "b/c/y.txt", "bc/z.txt", "b-old/w.txt"]
    for i, name in enumerate(names):
        (tmp_path / "a" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "a" / name).write_text(f"{i}번 기사. 반도체 수출이 {i}년 만에 늘었다.")
    index = Index.create(embedder="fake")
    index.add([tmp_path / "a"])
    assert sorted(index.remove(str(tmp_path / "a" / "b"))) == ["x", "y"]
    assert sorted(d.doc_id for d in index.documents()) == ["w", "z"]


def test_a_path_removes_every_document_only_when_told_to(tmp_path: Path) -> None:
    """`rag remove "./$DIR"` with the variable unset, in the folder indexed, names every
    document: it removes nothing without --all (everything=True). Doc ids named one by one,
    and a path naming part of the index, are meant."""
    for name in ("a/x.txt", "a/y.txt", "b/z.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(f"{name} 기사. 반도체 수출이 늘었다.")
    index = Index.create(tmp_path / "idx", embedder="fake")
    index.add([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(RagError, match=r"would remove all 3 documents of the index; pass --all"):
        index.remove([f"{tmp_path}/", str(tmp_path / "a")])
    assert len(Index.open(tmp_path / "idx")) == 3
    assert index.remove(str(tmp_path / "a")) == ["x", "y"]
    index.add([tmp_path / "a"])
    assert sorted(index.remove(["x", "y", "z"])) == ["x", "y", "z"]  # each named
    index.add([tmp_path / "a", tmp_path / "b"])
    assert sorted(index.remove(f"{tmp_path}/", everything=True)) == ["x", "y", "z"]
    assert len(Index.open(tmp_path / "idx")) == 0


def test_remove_refuses_an_empty_or_ambiguous_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "" would name the working directory (every document under it: `rag remove "$FILE"`
    with an unset variable) and "/" every document (`rag remove "$DIR/"`); "news" naming
    both the document from other/news.txt and the folder news/ must not remove the one the
    user did not mean."""
    monkeypatch.chdir(tmp_path)
    for name in ("news/a.txt", "other/news.txt"):
        Path(name).parent.mkdir(exist_ok=True)
        Path(name).write_text(f"{name} 기사. 반도체 수출이 늘었다.")
    index = Index.create(tmp_path / "idx", embedder="fake")
    index.add([Path("news"), Path("other")])
    refused = [("", "an empty name"), ("  ", "an empty name"), ("news", "both")]
    refused += [("/", "the root folder"), ("//", "the root folder")]  # "$DIR/", DIR unset
    for name, message in refused:
        with pytest.raises(RagError, match=message):
            index.remove(name)
    assert sorted(d.doc_id for d in index.documents()) == ["a", "news"]
    # Also once the folder is deleted (the clean-up after it): the document "news" went.
    shutil.rmtree("news")
    with pytest.raises(RagError, match="both"):
        index.remove("news")
    assert index.remove("./news") == ["a"]
    assert index.remove("news") == ["news"]  # now only the document


def test_interrupted_write_leaves_previous_index(
    seeds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag import bm25

    index = Index.create(embedder="fake")
    index.add([seeds / f"{KAKAO}.txt"])
    before = [d.doc_id for d in Index.open().documents()]

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(bm25, "save", interrupted)  # after records and vectors are written
        index.add([seeds])

    reopened = Index.open()
    assert [d.doc_id for d in reopened.documents()] == before
    assert reopened.search("카카오엔터프라이즈")[0].doc_id == KAKAO
    # The half-written generation is gone; the next write succeeds and keeps only its own
    # generation (the manifest still names the one before, removed right after the switch).
    assert not (index.path / "pending.json").exists()
    Index.open().add([seeds])
    manifest = store.read_manifest(index.path)
    names = {p.name for p in index.path.iterdir()}
    in_use = {*manifest.files.values(), *manifest.segments}
    assert names == {".lock", ".readers", "manifest.json", *in_use}
    previous = ["filters-2.npy", "live-2.npy", "docs-2.npy", "seg-2"]
    assert manifest.previous == previous


def _hold_lock(path: str, ready: Any) -> None:
    with store.lock(Path(path)):
        ready.set()
        time.sleep(5)


@contextlib.contextmanager
def _locked_by_another_process(path: Path) -> Iterator[None]:
    """Another process holds the index's write lock while in the block."""
    ready = multiprocessing.get_context("fork").Event()
    proc = multiprocessing.get_context("fork").Process(target=_hold_lock, args=(str(path), ready))
    proc.start()
    try:
        assert ready.wait(10)
        yield
    finally:
        proc.terminate()
        proc.join()


def test_second_writer_is_refused(tmp_path: Path) -> None:
    index = Index.create(embedder="fake")
    with (
        _locked_by_another_process(index.path),
        pytest.raises(IndexLocked, match="being written by another process"),
    ):
        index.add(_records(1, "X", "2024-01-01", "테스트"))


def test_undoing_a_new_index_never_removes_one_another_process_took_over(tmp_path: Path) -> None:
    """`rag index` removes the index it created when nothing went in; but another `rag
    index` may have opened the new index meanwhile, and then it is not this run's to remove."""
    index = Index.create(tmp_path / "new", embedder="fake")
    created = store.read_manifest(index.path).generation
    with _locked_by_another_process(index.path):
        assert not store.undo_create(index.path, created, directory=True)  # being written
    Index.open(index.path).add(_records(1, "X", "2024-01-01", "테스트"))
    assert not store.undo_create(index.path, created, directory=True)  # written since
    assert len(Index.open(index.path).documents()) == 1

    empty = Index.create(tmp_path / "empty", embedder="fake")
    generation = store.read_manifest(empty.path).generation
    assert store.undo_create(empty.path, generation, directory=True)
    assert not empty.path.exists()
    assert not store.undo_create(empty.path, generation, directory=True)
    assert not empty.path.exists()


def _current(path: Path, kind: str) -> Path:
    """The current generation's file of ``kind`` (the previous generation's are kept too);
    records and vectors: the newest segment's."""
    manifest = json.loads((path / "manifest.json").read_text())
    inside = {"records": "records.sqlite", "vectors": "vectors.npy"}
    if kind in inside:
        return path / manifest["segments"][-1] / inside[kind]
    return path / manifest["files"][kind]


def _garble(file: Path) -> None:
    """Overwrite a file with junk of the same size (a size check cannot catch it)."""
    file.write_bytes(b"x" * file.stat().st_size)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda p: (p / "manifest.json").write_text("{not json"),
            "manifest.json is not valid JSON",
        ),
        # Tracebacks in every command (RecursionError, ValueError of int()).
        (
            lambda p: (p / "manifest.json").write_text("[" * 200_000 + "]" * 200_000),
            "manifest.json is not valid JSON",
        ),
        (
            lambda p: (p / "manifest.json").write_text('{"generation": ' + "9" * 5000 + "}"),
            "manifest.json is not valid JSON",
        ),
        (lambda p: _current(p, "vectors").unlink(), r"seg-\d+/vectors\.npy is missing"),
        (
            lambda p: _current(p, "records").write_text("truncated"),
            r"seg-\d+/records\.sqlite is 9 bytes, manifest says",
        ),
        (
            lambda p: _garble(_current(p, "records")),
            r"seg-\d+/records\.sqlite has changed since it was written",
        ),
        (
            lambda p: _garble(_current(p, "filters")),
            r"filters-\d+\.npy has changed since it was written",
        ),
        (
            lambda p: (p / "manifest.json").write_text(
                json.dumps({**json.loads((p / "manifest.json").read_text()), "format_version": 99})
            ),
            "format 99 is newer",
        ),
        (
            lambda p: (p / "manifest.json").write_text(
                json.dumps({**json.loads((p / "manifest.json").read_text()), "format_version": 1})
            ),
            "format 1 was written by an older rag; index the articles again",
        ),
    ],
)
def test_corrupt_index_is_detected(seeds: Path, damage, message: str) -> None:
    index = Index.create(embedder="fake")
    index.add([seeds])
    damage(index.path)
    with pytest.raises(IndexCorrupt, match=message):
        Index.open()


def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFound, match=f"no index at {tmp_path / 'nowhere'}"):
        Index.open(tmp_path / "nowhere")


def test_embedder_mismatch_names_the_required_model(seeds: Path) -> None:
    Index.create(embedder="fake").add([seeds])
    other = Index.open(embedder="fake:b")
    with pytest.raises(EmbedderMismatch, match="index was built with embedder 'fake' but 'fake:b'"):
        other.search("카카오")
    with pytest.raises(EmbedderMismatch):
        other.add([seeds])


class _Stamped(FakeEmbedder):
    """The fake embedder with a fingerprint: its probe vectors may be cached."""

    def fingerprint(self) -> str:
        return f"stamped {self.variant}"


def test_probe_vectors_are_cached_by_fingerprint(tmp_path: Path, seeds: Path) -> None:
    Index.create(embedder=_Stamped()).add([seeds])
    first = Index.open(embedder=_Stamped())
    first.search("카카오")
    assert first.embedder.calls == 1  # the query: the probes were read from the cache
    assert len(list((tmp_path / "cache" / "probes").glob("*.json"))) == 1
    # Another model behind a familiar name has its own fingerprint, and is still refused.
    with pytest.raises(EmbedderMismatch, match="probe cosine"):
        Index.open(embedder=_Stamped("b")).search("카카오")
    # A broken cache file is embedded again.
    for file in (tmp_path / "cache" / "probes").glob("*.json"):
        file.write_text("[[1, 2", encoding="utf-8")
    again = Index.open(embedder=_Stamped())
    again.search("카카오")
    assert again.embedder.calls == 3


@pytest.mark.parametrize(
    "damaged",
    ["[[null]]", "[[0.0]]", '{"a": 1}', '[{"a": 1}]', "[" * 100_000],
    ids=["nulls", "zeros", "object", "objects", "deep"],
)
def test_a_damaged_probe_cache_never_lets_another_model_pass(
    tmp_path: Path, seeds: Path, damaged: str
) -> None:
    """A cache of the right shape but no embedding (nulls: cosine NaN, which no threshold
    refuses) let "b" pass as "a"; other damage was a traceback."""
    Index.create(embedder=_Stamped()).add([seeds])
    with pytest.raises(EmbedderMismatch, match="probe cosine"):
        Index.open(embedder=_Stamped("b")).search("카카오")
    for file in (tmp_path / "cache" / "probes").glob("*.json"):
        rows = damaged.replace("[[null]]", json.dumps([[None] * 64] * 2))
        file.write_text(rows.replace("[[0.0]]", json.dumps([[0.0] * 64] * 2)), encoding="utf-8")
    with pytest.raises(EmbedderMismatch, match="probe cosine"):
        Index.open(embedder=_Stamped("b")).search("카카오")
    assert len(Index.open(embedder=_Stamped()).search("카카오")) > 0


def test_a_probe_cache_of_other_vectors_does_not_fail_a_good_index(
    tmp_path: Path, seeds: Path
) -> None:
    """Unit vectors of the right shape but another model's (a cache copied between machines,
    or tampered with) made every search fail with "index was built with embedder 'a' but
    'a' was given"; the probes are embedded again before a mismatch is declared."""
    Index.create(embedder=_Stamped()).add([seeds])
    probes = tmp_path / "cache" / "probes"
    [mine] = probes.glob("*.json")
    with pytest.raises(EmbedderMismatch):  # b's probes, in b's cache entry...
        Index.open(embedder=_Stamped("b")).search("카카오")
    [other] = set(probes.glob("*.json")) - {mine}
    mine.write_text(other.read_text(encoding="utf-8"), encoding="utf-8")  # ...under a's name
    assert len(Index.open(embedder=_Stamped()).search("카카오")) > 0
    assert mine.read_text(encoding="utf-8") != other.read_text(encoding="utf-8")  # mended


def test_a_manifest_probe_of_nulls_is_no_probe(seeds: Path) -> None:
    index = Index.create(embedder="fake")
    index.add([seeds])
    recorded = dict(index._snap.manifest.embedder, probe=[None] * 128)
    with pytest.raises(EmbedderMismatch, match="no usable probe vectors"):
        FakeEmbedder().check_compatible(recorded)


def test_an_article_over_the_size_limit_is_reported_not_indexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "MAX_ARTICLE_CHARS", 200)  # 1,000,000 by default
    (tmp_path / "news").mkdir()
    (tmp_path / "news" / "long.txt").write_text("반도체 수출이 늘었다. " * 20)  # 259 cleaned
    (tmp_path / "news" / "short.txt").write_text("반도체 수출이 늘었다. 기업들은 투자를 늘렸다.")
    report = Index.create(tmp_path / "idx", embedder="fake").add([tmp_path / "news"])
    assert report.added == ["short"]
    [skipped] = report.skipped
    assert skipped.path.endswith("long.txt")
    assert (
        skipped.reason == "article of 259 characters, over the limit of 200: split it into articles"
    )


def test_an_index_inside_the_folder_indexed_is_not_read_as_articles(
    seeds: Path, tmp_path: Path
) -> None:
    # The second run read the index's 491 JSON files and printed a skipped line for each.
    news = tmp_path / "news"
    shutil.copytree(seeds, news)
    (news / "app").mkdir()
    (news / "app" / "manifest.json").write_text('{"name": "not an index"}')  # still read
    index = Index.create(news / "idx", embedder="fake")
    first = index.add([news])
    again = index.add([news])
    assert len(first.added) == 2 and len(again.unchanged) == 2
    assert [Path(s.path).name for s in [*first.skipped, *again.skipped]] == ["manifest.json"] * 2


def test_an_index_given_as_the_articles_is_one_skipped_line(seeds: Path, tmp_path: Path) -> None:
    # "rag index old-idx --index new-idx" printed a skipped line for each of its files.
    old = Index.create(tmp_path / "old", embedder="fake")
    old.add([seeds])
    report = Index.create(tmp_path / "new", embedder="fake").add([tmp_path / "old", seeds])
    assert len(report.added) == 2
    assert [(Path(s.path).name, s.reason) for s in report.skipped] == [
        ("old", "a rag index, not articles")
    ]


def test_create_refuses_existing_index(seeds: Path) -> None:
    Index.create(embedder="fake")
    with pytest.raises(RagError, match="an index already exists"):
        Index.create(embedder="fake")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fusion": "max"}, "invalid fusion 'max'; valid: convex, rrf, dense, bm25"),
        ({"bm25_weight": 1.5}, "invalid bm25_weight 1.5"),
        ({"since": "yesterday"}, "invalid since 'yesterday'; valid: a date as YYYY-MM-DD"),
        ({"k": 0}, "invalid k 0"),
        # These failed deep inside the search with TypeError: '<' not supported, or a slice.
        ({"k": "5"}, "invalid k '5'; valid: a positive integer"),
        ({"k": 1.5}, "invalid k 1.5"),
        ({"bm25_weight": "0.5"}, "invalid bm25_weight '0.5'"),
        # These failed in fromisoformat ("argument must be str") and in casefold.
        ({"since": 2024}, "invalid since 2024; valid: a date as YYYY-MM-DD"),
        ({"until": 3.5}, "invalid until 3.5"),
        ({"source": 3}, "invalid source 3; valid: an outlet's name as str"),
        ({"source": b"x"}, "invalid source b'x'"),
    ],
)
def test_bad_search_options(seeds: Path, kwargs: dict, message: str) -> None:
    index = Index.create(embedder="fake")
    index.add([seeds])
    with pytest.raises(RagError, match=message):
        index.search("카카오", **kwargs)


def test_wrong_argument_types_are_one_line_errors(seeds: Path) -> None:
    """Arguments of the wrong type: a bytes query failed in a regular expression and None in
    len(), bytes given to `add` were a rejected record per byte, and `remove` took a Path,
    which is a path, for a list (``'PosixPath' object is not iterable``)."""
    index = Index.create(embedder="fake")
    index.add([seeds])
    for query, name in [(None, "NoneType"), ("카카오".encode(), "bytes")]:
        with pytest.raises(TypeError, match=f"^the query must be a str, not {name}$"):
            index.search(query)  # type: ignore[arg-type]
    for inputs in [None, str(seeds).encode()]:
        with pytest.raises(TypeError, match=r"^inputs are paths, records or a list of them"):
            index.add(inputs)  # type: ignore[arg-type]
    for targets in [KAKAO.encode(), [None]]:
        with pytest.raises(TypeError, match=r"doc ids? or (a )?paths? as str, not"):
            index.remove(targets)  # type: ignore[arg-type]
    assert len(index.search("카카오", k=np.int64(2), bm25_weight=np.float32(0.5))) == 2
    # An embedder that is neither a spec nor an Embedder was ignored by open, and failed in
    # str.partition in create.
    message = "^an embedder spec is a str such as 'onnx-int8', not int$"
    with pytest.raises(TypeError, match=message):
        Index.open(embedder=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=message):
        Index.create(seeds.parent / "new", embedder=5)  # type: ignore[arg-type]
    assert not (seeds.parent / "new").exists()
    assert index.remove(seeds / f"{KAKAO}.txt") == [KAKAO]
    assert [d.doc_id for d in Index.open().documents()] == [FLITTO]


def _vm_flags(file: Path) -> set[str]:
    """The kernel's flags for this process's mapping of ``file`` (/proc/self/smaps)."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.endswith(str(file)):
            flags = next(x for x in lines[i + 1 :] if x.startswith("VmFlags:"))
            return set(flags.split()[1:])
    raise AssertionError(f"{file} is not mapped")


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="Linux /proc")
def test_vectors_are_read_without_readahead_except_when_copied(seeds: Path) -> None:
    # Searches read scattered rows; readahead around each filled the page cache with the
    # whole vectors file at 1M chunks. "rr" and "sr" are the kernel's flags for
    # MADV_RANDOM and MADV_SEQUENTIAL.
    Index.create(embedder="fake").add([seeds])
    snap = store.read(Index.open().path)
    file = (snap.path / snap.manifest.segments[-1] / "vectors.npy").resolve()
    assert "rr" in _vm_flags(file)
    with store.sequential(snap.vectors):
        assert {"sr"} <= _vm_flags(file) and "rr" not in _vm_flags(file)
    assert "rr" in _vm_flags(file)


def _batch(path: Path, ids: range, source: str) -> Path:
    rows = [
        {"id": f"a{i}", "text": f"{i}번 기사. 반도체 수출이 {i}% 늘었다.", "source": source}
        | ({"date": f"2024-01-{i % 28 + 1:02d}"} if i % 3 else {})
        for i in ids
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("source", ["연합뉴스", "가나일보"])  # a known outlet, a new one first
def test_adding_by_copying_the_files_writes_what_copying_rows_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """A merge whose first segment is kept whole: its records and vectors files are copied by
    the kernel and the rest added (the fast path); the result equals the row-by-row copy,
    filters included."""
    from rag import diskio, writer

    def build(name: str) -> store.Snapshot:
        index = Index.create(tmp_path / name, embedder="fake")
        index.add([_batch(tmp_path / "one.jsonl", range(5), "연합뉴스")])
        index.add([_batch(tmp_path / "two.jsonl", range(5, 9), source)])
        return store.read(index.path)

    fast = build("fast")
    with monkeypatch.context() as patch:
        patch.setattr(writer, "_whole_file", lambda *a: False)
        patch.setattr(diskio, "_header_bytes", lambda *a: -1)
        slow = build("slow")
    assert list(fast.records.all_chunks()) == list(slow.records.all_chunks())
    strip = [d.model_dump(exclude={"indexed_at"}) for d in fast.records.docs().values()]
    assert strip == [d.model_dump(exclude={"indexed_at"}) for d in slow.records.docs().values()]
    assert np.array_equal(fast.vectors, slow.vectors) and len(fast.vectors) == 9
    assert np.array_equal(fast.filters, slow.filters)
    assert fast.records.counts() == slow.records.counts() == (9, 9)
    assert fast.records.outlet_code(source) == slow.records.outlet_code(source)


def test_a_second_writer_thread_is_told_it_is_one_of_this_process(tmp_path: Path) -> None:
    """flock holds per open file: a second writer thread was refused as if another process
    held the index, sending the user looking for one."""
    import threading

    index = Index.create(embedder="fake")
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.lock(index.path):
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert inside.wait(10)
        with pytest.raises(IndexLocked, match="by another thread of this process"):
            index.add(_records(1, "X", "2024-01-01", "테스트"))
    finally:
        release.set()
        holder.join()
    index.add(_records(1, "X", "2024-01-01", "테스트"))  # the lock was let go
    assert len(index.documents()) == 1
