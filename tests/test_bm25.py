"""BM25 segments (`rag.bm25`): scores equal a bm25s index built from scratch after any adds
and removes; merges, tombstones, damaged segments and format-2 indexes."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import sys
from pathlib import Path

import bm25s
import numpy as np
import pytest

from rag import Index, bm25, manifest, store
from rag.errors import IndexCorrupt
from rag.names import Spellings, phonetic, romanize, spelt_names

PARAMS = {"k1": 1.5, "b": 0.75, "method": "lucene"}
# A small vocabulary with a skewed frequency: common terms, rare ones, repeats within a chunk.
WORDS = [f"어{i}" for i in range(60)]


def _chunk(rng: random.Random) -> str:
    return " ".join(rng.choices(WORDS, weights=range(60, 0, -1), k=rng.randint(1, 12)))


def _fresh(corpus: list[str]) -> bm25s.BM25:
    retriever = bm25s.BM25(**PARAMS)
    retriever.index([c.split() for c in corpus], show_progress=False)
    return retriever


def _assert_same_as_fresh(lexical: bm25.Lexical | None, corpus: list[str]) -> None:
    """Every query's frequencies, scores (1e-6) and top 10 equal a fresh bm25s build's."""
    assert lexical is not None and lexical.num_docs == len(corpus)
    fresh = _fresh(corpus)
    queries = [[w] for w in WORDS] + [WORDS[i : i + 3] for i in range(0, 58, 5)] + [["어1"] * 2]
    for query in queries:
        known = [t for t in query if t in fresh.vocab_dict]
        assert [t for t in query if lexical.frequency(t)] == known
        if not known:
            continue
        expected, got = fresh.get_scores(known), lexical.scores(known)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        top = np.argsort(-expected, kind="stable")[:10]
        assert np.argsort(-got, kind="stable")[:10].tolist() == top.tolist()


def _generation(
    path: Path,
    gen: int,
    base: bm25.Lexical | None,
    keep: np.ndarray,
    new: list[str],
    corpus: list[str],
) -> tuple[bm25.Written, bm25.Lexical | None]:
    """Write a generation's BM25 side as the store does, and open it."""
    written = bm25.write(path, f"bm25-{gen}", base, keep, new, lambda: iter(corpus))
    np.save(path / f"live-{gen}.npy", written.live)
    return written, bm25.read(path, 3, {"live": f"live-{gen}.npy"}, written.segments, PARAMS)


@pytest.mark.parametrize("seed", range(4))
def test_segments_score_like_a_fresh_build_after_adds_and_removes(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    corpus: list[str] = []
    lexical: bm25.Lexical | None = None
    counts = []
    for gen in range(1, 40):
        keep = sorted(
            rng.sample(range(len(corpus)), k=len(corpus) - rng.randint(0, len(corpus) // 5))
        )
        new = [_chunk(rng) for _ in range(rng.choice([0, 1, 3, 20, 60]))]
        corpus = [corpus[i] for i in keep] + new
        _, lexical = _generation(tmp_path, gen, lexical, np.array(keep, int), new, corpus)
        if corpus:
            _assert_same_as_fresh(lexical, corpus)
        else:
            assert lexical is None
        # LSM: few segments (about log4 of the chunks), none mostly removed.
        if isinstance(lexical, bm25.Segments):
            counts.append(len(lexical.segments))
            assert len(lexical.segments) <= 2 + math.log(lexical.num_docs, bm25.RATIO)
            assert all(s.count >= (1 - bm25.DEAD_SHARE) * len(s.live) for s in lexical.segments)
    assert max(counts) > 1  # segments were added, and merged


def test_adding_writes_only_a_small_segment_and_removing_none(tmp_path: Path) -> None:
    rng = random.Random(0)
    corpus = [_chunk(rng) for _ in range(400)]
    _, lexical = _generation(tmp_path, 1, None, np.zeros(0, int), corpus, corpus)
    new = [_chunk(rng) for _ in range(10)]
    second, lexical = _generation(tmp_path, 2, lexical, np.arange(400), new, corpus + new)
    assert second.segments == ["bm25-1", "bm25-2"]  # the 400 chunks were not rewritten
    assert len(bm25.read_postings(tmp_path / "bm25-2", tmp_path).lengths) == 10
    keep = np.array([i for i in range(410) if i % 7])
    third, lexical = _generation(tmp_path, 3, lexical, keep, [], [(corpus + new)[i] for i in keep])
    assert (third.new, third.segments) == (None, ["bm25-1", "bm25-2"])  # tombstones only
    assert int(third.live.sum()) == len(keep)
    _assert_same_as_fresh(lexical, [(corpus + new)[i] for i in keep])


def test_merge_drops_removed_chunks_and_unused_terms(tmp_path: Path) -> None:
    a = bm25.build(["가 나 나", "다", "가 라"])
    b = bm25.build(["라 마", "바"])
    merged = bm25.merge([(a, np.array([True, False, True])), (b, np.array([False, True]))])
    assert merged.terms == ["가", "나", "라", "바"]  # 다 and 마 were only in removed chunks
    assert merged.lengths.tolist() == [3, 2, 1]
    assert merged.indptr.tolist() == [0, 2, 3, 4, 5]
    assert merged.rows.tolist() == [0, 1, 0, 1, 2]
    assert merged.tf.tolist() == [1.0, 1.0, 2.0, 1.0, 1.0]


# -- through the index ---------------------------------------------------------------------


def _records_terms(path: Path) -> list[str]:
    return [c.terms for c in store.read(path).records.all_chunks()]


def _articles(path: Path, ids: range) -> Path:
    records = [
        {"id": f"n{i}", "text": f"{i}번째 기사. 카카오 반도체 수출이 {i}년 만에 늘었다."}
        for i in ids
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    return path


def test_index_add_and_remove_keep_segments_and_scores(seeds: Path, tmp_path: Path) -> None:
    index = Index.create(embedder="fake")
    index.add([seeds, _articles(tmp_path / "a.jsonl", range(40))])
    first = store.read_manifest(index.path).segments
    index.add([_articles(tmp_path / "b.jsonl", range(40, 42))])
    m = store.read_manifest(index.path)
    assert m.format_version == manifest.FORMAT_VERSION
    assert m.segments == [first[0], f"seg-{m.generation}"]  # the first one is kept
    _assert_terms_scored_like_fresh(index)
    index.remove(["n1", "n41"])
    assert store.read_manifest(index.path).segments == m.segments  # tombstones only
    _assert_terms_scored_like_fresh(index)
    assert index.check() == (len(store.read_manifest(index.path).checksums), [])
    # Only the current generation's files are left, segments of earlier ones included.
    m = store.read_manifest(index.path)
    names = {p.name for p in index.path.iterdir()} - {".lock", ".readers", "manifest.json"}
    assert names == {*m.files.values(), *m.segments}


def test_search_and_the_english_stopwords_do_not_import_bm25s(seeds: Path) -> None:
    # bm25s brings scipy: 0.2 s of every cold `rag search`. Only writing needs it; answering
    # reads its English stopwords without importing it.
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    from rag.korean import english_stopwords

    assert english_stopwords() == frozenset(STOPWORDS_EN_PLUS)
    index = Index.create(embedder="fake")
    index.add([seeds])
    code = (
        "import sys; from rag import Index; from rag.korean import english_stopwords; "
        f"hits = Index.open({str(index.path)!r}).search('카카오 구조조정', fusion='bm25'); "
        "assert 'the' in english_stopwords(); "
        "print(len(hits), 'bm25s' in sys.modules, 'scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    hits, *imported = out.stdout.split()
    assert int(hits) > 0 and imported == ["False", "False"]


def _assert_terms_scored_like_fresh(index: Index) -> None:
    corpus = _records_terms(index.path)
    snap = store.read(index.path)
    fresh = _fresh(corpus)
    for term in list(fresh.vocab_dict)[:50]:
        if not term:
            continue
        np.testing.assert_allclose(snap.bm25.scores([term]), fresh.get_scores([term]), atol=1e-6)  # type: ignore[union-attr]


# -- format 2, damage, interrupted writes ----------------------------------------------------

# An index written by rag before segments (format 2: one bm25s index), with the fake embedder.
FORMAT2 = Path(__file__).parent / "data" / "format2-index"


def test_format_2_index_is_searched_then_converted_by_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "old"
    shutil.copytree(FORMAT2, path)
    index = Index.open(path)
    assert index.info().format_version == 2 and isinstance(index._snap.bm25, bm25.Legacy)
    old = [(h.chunk_id, round(h.score, 5)) for h in index.search("카카오 사업", fusion="bm25")]
    assert old and index.document_frequencies(["카카오"])[0]["카카오"] > 0
    # An English query's names are spelt from its vocabulary too.
    assert index.search("What is Kakao doing?", k=1, fusion="bm25")[0].bm25_score
    _assert_terms_scored_like_fresh(index)
    index.add([_articles(tmp_path / "a.jsonl", range(2))])
    m = store.read_manifest(path)
    assert (m.format_version, m.segments) == (4, [f"seg-{m.generation}"])
    assert not (path / "bm25-2").exists()  # the bm25s index went with its generation
    _assert_terms_scored_like_fresh(index)
    index.remove(["n0", "n1"])  # back to the old articles: the same ranking and scores
    assert [
        (h.chunk_id, round(h.score, 5)) for h in index.search("카카오 사업", fusion="bm25")
    ] == old


def _segment_file(path: Path, name: str) -> Path:
    return path / store.read_manifest(path).segments[0] / name


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: shutil.rmtree(p / store.read_manifest(p).segments[0]), r"seg-\d+ is missing"),
        (
            lambda p: (p / store.read_manifest(p).files["live"]).unlink(),
            r"live-\d+\.npy is missing",
        ),
        (
            lambda p: _segment_file(p, "rows.npy").write_bytes(b"\x93NUMPY garbage"),
            r"seg-\d+/rows\.npy is \d+ bytes, manifest says \d+",
        ),
        (
            lambda p: _segment_file(p, "tf.npy").write_bytes(
                _segment_file(p, "tf.npy").read_bytes()[:-4] + b"\xff\xff\xff\x7f"
            ),
            r"seg-\d+/tf\.npy has changed since it was written \(checksum differs\)",
        ),
    ],
)
def test_damaged_segment_is_refused_in_one_line(seeds: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    index = Index.create(embedder="fake")
    index.add([seeds])
    damage(index.path)
    with pytest.raises(IndexCorrupt, match=message) as e:
        Index.open()
    assert "\n" not in str(e.value)


def test_segment_arrays_that_disagree_are_refused(tmp_path: Path) -> None:
    postings = bm25.build(["가 나", "나 다"])
    bm25.save(postings, tmp_path / "bm25-1")
    np.save(tmp_path / "bm25-1" / "lengths.npy", np.array([2, 2, 2], dtype=np.int32))
    np.save(tmp_path / "live-1.npy", np.ones(2, dtype=bool))
    with pytest.raises(IndexCorrupt, match=r"live-1\.npy is shorter than the BM25 segments"):
        bm25.read(tmp_path, 3, {"live": "live-1.npy"}, ["bm25-1"], PARAMS)
    np.save(tmp_path / "bm25-1" / "rows.npy", np.array([0, 1, 1, 5], dtype=np.int32))
    np.save(tmp_path / "live-1.npy", np.ones(3, dtype=bool))
    opened = bm25.read(tmp_path, 3, {"live": "live-1.npy"}, ["bm25-1"], PARAMS)
    with pytest.raises(IndexCorrupt, match="bm25-1 is not a readable BM25 segment"):
        opened.scores(["다"])  # a row beyond the segment: caught when read, not an IndexError


def test_interrupted_merge_leaves_the_previous_index(
    seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = Index.create(embedder="fake")
    index.add([_articles(tmp_path / "a.jsonl", range(40))])
    index.add([_articles(tmp_path / "b.jsonl", range(40, 42))])
    before = store.read_manifest(index.path)
    hits = [(h.chunk_id, h.score) for h in index.search("반도체 수출", k=5)]
    real = bm25.save

    def half(postings: bm25.Postings, directory: Path) -> None:
        real(postings, directory)
        (directory / "tf.npy").write_bytes(b"half")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(bm25, "save", half)
        index.add([seeds])  # 6 chunks after 2: merged with the newest segment
    assert store.read_manifest(index.path) == before
    assert Index.open().check() == (len(before.checksums), [])
    assert [(h.chunk_id, h.score) for h in Index.open().search("반도체 수출", k=5)] == hits
    Index.open().add([seeds])
    m = store.read_manifest(index.path)
    assert m.segments == [before.segments[0], f"seg-{m.generation}"]
    _assert_terms_scored_like_fresh(Index.open())


def test_a_name_kiwi_reads_the_genitive_into_is_searched_as_the_name(tmp_path: Path) -> None:
    # Kiwi reads "플리토의" as one word; the index holds 플리토, so BM25 searches for that.
    path = tmp_path / "a.jsonl"
    records = [
        {"id": "flitto", "text": "플리토는 3분기 매출 68억원을 기록했다."},
        {"id": "kakao", "text": "카카오는 3분기 매출이 늘었다. 3분기 매출 증가는 광고 덕분이다."},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    index = Index.create(embedder="fake")
    index.add([path])
    hits = index.search("플리토의 3분기 매출은?", fusion="bm25")
    assert hits[0].doc_id == "flitto"


def test_an_english_query_searches_its_names_as_the_articles_spell_them(tmp_path: Path) -> None:
    # "Lee Gwang-jae" shares no word with articles writing 이광재, and the dense model reads a
    # romanised Korean name poorly: English questions about Korean people found no article.
    path = tmp_path / "a.jsonl"
    records = [
        {"id": "lee", "text": "대법원은 이광재 지사에게 징역형을 확정했다. 그는 지사직을 잃었다."},
        {"id": "ryu", "text": "류경수 의원은 오늘 기자회견을 열었다. 그는 예산안에 반대했다."},
        {"id": "port", "text": "연평도 주민들이 대피했다. 포격으로 해병대원이 숨졌다."},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    index = Index.create(embedder="fake")
    index.add([path])
    for query, doc in [
        ("Why did Lee Gwang-jae lose his post?", "lee"),  # 류경수 has the same key
        ("What happened on Yeonpyeong?", "port"),  # 연평도: a place by its kind (도)
    ]:
        assert index.search(query, k=1, fusion="bm25")[0].doc_id == doc
    # In the default fusion the name's words count as words the corpus knows: a query of
    # a name alone weighs BM25 fully (the fake embedder's dense ranking is arbitrary).
    assert index.search("Lee Gwang-jae", k=1)[0].doc_id == "lee"
    # A Korean query is searched as it is; a short name alone ("Kim") matches nothing.
    spellings = Spellings(["김", "김치", "이광재"])
    assert spellings.of("Kim", lambda word: 1) == ""
    assert spelt_names("Who is Kim?", spellings, lambda word: 1) == []


def test_countries_peoples_and_cities_are_searched_as_korean_translates_them() -> None:
    # By sound, Japan was spelt 재판 (a trial), Korea 콜라 and China 친노: BM25 searched
    # those words. Korean writes them as CLDR translates them (rag.places).
    vocabulary = ["재판", "일본", "콜라", "한국", "대한민국", "친노", "중국", "폴란드", "보리스"]
    spellings = Spellings(vocabulary)
    counts = {"한국": 9, "대한민국": 3}
    held = {"일본", "한국", "대한민국", "중국", "폴란드"}

    def known(word: str) -> int:
        return counts.get(word, 1) if word in held else 0

    assert spelt_names("How did South Korea beat Japan?", spellings, known) == [
        (["south", "korea"], "한국"),  # of CLDR's 대한민국 and the news's 한국, the commoner
        (["japan"], "일본"),
    ]
    assert spelt_names("What did the Polish and Chinese say?", spellings, known) == [
        (["polish"], "폴란드"),
        (["chinese"], "중국"),
    ]
    # A Korean public body is searched by its Korean name (rag.institutions), or by that
    # name's words when the index holds them only as Kiwi cuts it (공정, 거래, 위원회).
    held |= {"통일부", "공정", "거래", "위원회"}
    assert spelt_names(
        "Did the Unification Ministry and Fair Trade Commission?", spellings, known
    ) == [
        (["unification", "ministry"], "통일부"),
        (["fair", "trade", "commission"], "공정"),
        (["fair", "trade", "commission"], "거래"),
        (["fair", "trade", "commission"], "위원회"),
    ]
    # English writes 정 as Jong and 은 as un: Kim Jong-un was spelt 김정훈, closer letter by
    # letter to gimjeongeun than 김정은.
    people = Spellings(["김정은", "김정훈"])
    assert spelt_names("Kim Jong-un", people, lambda word: 1) == [(["kim", "jong", "un"], "김정은")]
    # A place the corpus does not write is not searched as something that sounds like it.
    assert spelt_names("floods in Thailand", Spellings(["타일랜드", "아일랜드"]), known) == []


def test_the_vocabulary_keys_are_each_words_key() -> None:
    words = ["이광재", "카카오브레인", "엘리자베스", "플리토", "뉘르부르크링", "서울시"]
    spellings = Spellings(words)
    for word, form, key in zip(spellings.words, spellings.forms, spellings.keys, strict=True):
        assert key == phonetic(romanize(form)) and form in word
