"""Reading articles: seed cleaning, bad inputs, encodings, JSON/JSONL, HTML, file walking."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

import pytest

from rag.clean import clean_scraped, copyright_owner, parse_byline
from rag.ingest import articles_from_records, decode_bytes, iter_files, load
from rag.records import Article, Skipped

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "examples" / "articles"
KAKAO = SEEDS / "004_9dd825083520fc60.txt"
FLITTO = SEEDS / "000_53a2b83788777dff.txt"
NEWS_PAGE = ROOT / "tests" / "data" / "ingest" / "news_page.html"

KAKAO_TITLE = "사업 재조정 사활 건 카카오 … 클라우드·AI 중심 재편"
GOOD = "카카오엔터프라이즈가 클라우드 사업에 집중한다.\n인공지능 사업은 카카오브레인이 맡는다."


def split(results: Iterable[Article | Skipped]) -> tuple[list[Article], list[Skipped]]:
    items = list(results)
    skipped = [s for s in items if isinstance(s, Skipped)]
    return [a for a in items if isinstance(a, Article)], skipped


def only_article(results: Iterable[Article | Skipped]) -> Article:
    articles, skipped = split(results)
    assert skipped == []
    assert len(articles) == 1
    return articles[0]


# --- the two real seeds -------------------------------------------------------------------------


def test_kakao_seed_metadata_and_text() -> None:
    article = only_article(load(KAKAO))

    assert article.key == article.path == str(KAKAO.resolve())
    assert article.doc_id is None
    assert article.title == KAKAO_TITLE
    assert article.date == dt.date(2023, 5, 16)
    assert article.published == dt.datetime(2023, 5, 16, 17, 31, 54)
    assert article.reporter == "고민서"
    assert article.source is None
    assert article.text.startswith("엔터프라이즈 구조조정부터\n'다음' 포털 사내독립기업 전환\n")
    assert article.text.endswith("카카오 안팎의 관측을 잠재울 것으로 보인다.")
    for gone in (
        "[고민서 기자]",
        "이 기사가 마음에 들었다면",
        "본문으로 바로가기",
        "글자크기",
        "기사 상세",
        "IT·과학",
        "사진설명",
        "입력 :",
        "수정 :",
        "18:57:06",
        KAKAO_TITLE,
    ):
        assert gone not in article.text, gone
    # The body line after each "사진설명" marker stays.
    assert "\n이 점에 대해 이경진 카카오엔터프라이즈 신임 대표이사 내정자는" in article.text
    assert article.content_hash == hashlib.sha256(article.text.encode()).hexdigest()


def test_flitto_seed_metadata_and_text() -> None:
    article = only_article(load(FLITTO))

    assert article.source == "디지털데일리"
    assert (article.title, article.date, article.published, article.reporter) == (None,) * 4
    assert article.text.startswith("한국무역협회는 지난 5 열린 ‘제61회 무역의날’을")
    assert article.text.endswith("입지를 마련할 수 있을 것으로 기대된다”이라고 전했다.")
    raw_lines = FLITTO.read_text(encoding="utf-8").splitlines()
    # Lines 2-13 are the article's twelve paragraphs: every one is kept whole, in order.
    assert article.text.split("\n") == raw_lines[1:13]


REMOVED = {
    KAKAO: [
        "본문으로 바로가기", "글자크기 설정", "기사 상세", "IT·과학", KAKAO_TITLE, "고민서 기자",
        "입력\xa0:", "2023-05-16 17:31:54", "수정\xa0:", "2023-05-16 18:57:06", "글자크기 설정",
        "사진설명", "사진설명", "[고민서 기자]", "이 기사가 마음에 들었다면,",
    ],
    FLITTO: [
        "<이미지를 클릭하시면 크게 보실 수 있습니다> |",
        "- Copyright ⓒ 디지털데일리. 무단전재 및 재배포 금지 -",
        "이 기사의 카테고리는 언론사의 분류를 따릅니다.",
        "기사가 속한 카테고리는 언론사가 분류합니다.",
        "언론사는 한 기사를 두 개 이상의 카테고리로 분류할 수 있습니다.",
        "언론사는 한 기사를 두 개 이상의 카테고리로 분류할 수 있습니다.",
    ],
}  # fmt: skip


@pytest.mark.parametrize("seed", [KAKAO, FLITTO], ids=["kakao", "flitto"])
def test_seed_cleaning_removes_only_boilerplate(seed: Path) -> None:
    """Diff raw against cleaned: removed lines are exactly the boilerplate, kept lines unchanged."""
    raw = [line.strip() for line in seed.read_text(encoding="utf-8").splitlines()]
    kept = [line for line in only_article(load(seed)).text.split("\n") if line]

    assert [line for line in raw if line and line not in kept] == REMOVED[seed]
    remaining = iter(raw)
    assert all(line in remaining for line in kept), "kept lines must be raw lines, in order"


# --- bad inputs ---------------------------------------------------------------------------------

CHROME = (
    "본문으로 바로가기\n\n글자크기 설정\n- Copyright ⓒ 디지털데일리. 무단전재 및 재배포 금지 -\n"
)
MIXED = "카카오엔터프라이즈가 ".encode() + "클라우드에 집중한다.".encode(
    "cp949"
)  # UTF-8, then CP949
UNDECODABLE = "cannot decode text (not UTF-8 or a detectable Korean encoding)"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256))
MENU_PAGE = """<html><head><title>한빛경제</title></head><body>
<nav><ul><li><a href="/p">정치</a></li><li><a href="/e">경제</a></li></ul></nav>
<footer><p>Copyright © 한빛경제. All rights reserved.</p></footer></body></html>"""

BAD_INPUTS = [
    ("empty.txt", b"", "empty file"),
    ("blank.md", b"  \n\t\r\n \n", "empty file"),
    ("chrome.txt", CHROME.encode(), "no article text"),
    ("photo.txt", PNG, "binary file, not text"),
    ("photo.html", PNG, "binary file, not text"),
    ("mixed.txt", MIXED, UNDECODABLE),
    ("latin1.txt", "Le café est très élevé à Noël.".encode("latin-1"), "cannot decode text"),
    ("garbage.jsonl", b"{this is not json\n", "not valid JSON"),
    ("notext.jsonl", b'{"id": "a1", "title": "no body"}\n', "record has no 'text'"),
    ("blanktext.jsonl", b'{"text": "   "}\n', "record has no 'text'"),
    ("number.json", b"42", "JSON must be an array of records or one record object"),
    ("strings.json", b'["just a string"]', "item 1: record is not a JSON object"),
    ("broken.json", b'[{"text": "x"', "not valid JSON"),
    ("none.json", b"[]", "JSON array has no records"),
    ("menu.html", MENU_PAGE.encode(), "no article text found in HTML"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "reason"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_skipped_and_the_rest_still_loads(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    (tmp_path / "good.txt").write_text(GOOD, encoding="utf-8")
    (tmp_path / name).write_bytes(content)

    articles, skipped = split(load([tmp_path]))

    assert [a.text for a in articles] == [GOOD]
    assert len(skipped) == 1
    assert skipped[0].path == str((tmp_path / name).resolve())
    assert reason in skipped[0].reason


def test_a_stray_byte_in_utf8_is_replaced_not_the_whole_article_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A Latin-1 "é" pasted into a UTF-8 article, and a character cut at the end.
    text = GOOD.encode() + " caf\xe9 메뉴".encode("latin-1", "ignore") + "카".encode()[:2]
    (tmp_path / "stray.txt").write_bytes(text)
    articles, skipped = split(load([tmp_path]))
    assert skipped == [] and articles[0].text.count("\ufffd") == 2
    assert "stray.txt: 2 invalid UTF-8 sequence(s) read as \ufffd" in caplog.text


def test_explicit_unsupported_and_missing_paths_are_reported(tmp_path: Path) -> None:
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.7")
    (tmp_path / "good.txt").write_text(GOOD, encoding="utf-8")

    articles, skipped = split(load([tmp_path / "report.pdf", tmp_path / "gone", tmp_path]))

    assert [a.text for a in articles] == [GOOD]  # the folder walk ignores report.pdf silently
    assert [(Path(s.path).name, s.reason) for s in skipped] == [
        ("report.pdf", "unsupported file type .pdf (supported: .txt .md .html .htm .jsonl .json)"),
        ("gone", "no such file or directory"),
    ]


# --- encodings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp949", "euc-kr", "utf-16"])
def test_text_file_encodings(tmp_path: Path, encoding: str) -> None:
    (tmp_path / "article.txt").write_bytes(GOOD.encode(encoding))

    assert only_article(load(tmp_path)).text == GOOD


@pytest.mark.parametrize(
    "text",
    [
        "카카오",  # charset-normalizer alone guesses big5 for these 6 bytes
        "뷁",  # ... and big5hkscs for these 2
        "똠방각하 햏자 펲시",  # CP949-only syllables, outside EUC-KR
        "“카카오”는 ⓒ 매일경제 기사다. ‘다음’은 포털이다.",
    ],
)
def test_short_cp949_decodes_correctly(text: str) -> None:
    assert decode_bytes(text.encode("cp949")) == text


# --- JSONL and JSON -----------------------------------------------------------------------------


def test_jsonl_fields_keys_and_a_bad_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_text(
        '{"id": "k1", "title": "카카오 재편", "date": "2023-05-16 17:31", "source": "매일경제",'
        ' "url": "https://example.com/k1", "reporter": "고민서 기자", "text": "카카오 재편\\n'
        '카카오가 사업을 정리한다.\\n[홍길동 기자]"}\n'
        "\n"
        "{oops\n"
        '{"date": "2023.05.16", "text": "다음이 사내독립기업이 됐다."}\n'
        '{"id": 7, "date": "어제", "text": "날짜를 읽을 수 없어도 기사는 남는다."}\n',
        encoding="utf-8",
    )
    base = str(path.resolve())

    with caplog.at_level(logging.WARNING, logger="rag.ingest"):
        articles, skipped = split(load(path))

    assert [str(s) for s in skipped] == [f"{base}:3: not valid JSON"]
    assert skipped[0].line == 3
    assert [a.key for a in articles] == [f"{base}#k1", f"{base}:4", f"{base}#7"]
    assert [a.doc_id for a in articles] == ["k1", None, "7"]
    first = articles[0]
    assert (first.title, first.source, first.url, first.reporter, first.path) == (
        "카카오 재편", "매일경제", "https://example.com/k1", "고민서", base
    )  # fmt: skip
    assert first.published == dt.datetime(2023, 5, 16, 17, 31)
    assert first.text == "카카오가 사업을 정리한다."  # title repeat and byline removed
    assert articles[1].date == dt.date(2023, 5, 16) and articles[1].published is None
    assert articles[2].date is None and articles[2].text == "날짜를 읽을 수 없어도 기사는 남는다."
    assert "cannot parse date '어제'" in caplog.text


def test_jsonl_duplicate_id_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_text('{"id": "a", "text": "첫 기사다."}\n{"id": "a", "text": "둘째 기사다."}\n')

    articles, skipped = split(load(path))

    assert [a.text for a in articles] == ["첫 기사다."]
    assert (skipped[0].line, skipped[0].reason) == (2, "duplicate id 'a' (first at line 1)")


def test_json_array_and_single_object(tmp_path: Path) -> None:
    (tmp_path / "many.json").write_text(
        '[{"text": "첫 기사다."}, {"id": "x9", "title": "둘째", "text": "둘째 기사다."},'
        ' {"title": "본문 없음"}]',
        encoding="utf-8",
    )
    (tmp_path / "one.json").write_text('{"title": "하나", "text": "한 건짜리 기사다."}')
    many, one = (str((tmp_path / n).resolve()) for n in ("many.json", "one.json"))

    articles, skipped = split(load(tmp_path))

    assert [(a.key, a.text) for a in articles] == [
        (f"{many}:1", "첫 기사다."),
        (f"{many}#x9", "둘째 기사다."),
        (one, "한 건짜리 기사다."),
    ]
    assert articles[1].title == "둘째"
    assert [(s.path, s.reason) for s in skipped] == [(many, "item 3: record has no 'text'")]


@pytest.mark.parametrize(
    ("value", "date", "published"),
    [
        ("2023-05-16", dt.date(2023, 5, 16), None),
        ("2023.05.16", dt.date(2023, 5, 16), None),
        ("2023-05-16 17:31", dt.date(2023, 5, 16), dt.datetime(2023, 5, 16, 17, 31)),
        ("2023-05-16 17:31:54", dt.date(2023, 5, 16), dt.datetime(2023, 5, 16, 17, 31, 54)),
        ("2023-05-16T17:31:54+09:00", dt.date(2023, 5, 16), dt.datetime(2023, 5, 16, 17, 31, 54)),
        # UTC is converted to Korea time, which moves this one to the next day.
        ("2023-05-16T20:00:00Z", dt.date(2023, 5, 17), dt.datetime(2023, 5, 17, 5, 0)),
        ("16 May", None, None),
    ],
)
def test_record_dates(value: str, date: dt.date | None, published: dt.datetime | None) -> None:
    article = only_article(articles_from_records([{"text": GOOD, "date": value}]))

    assert (article.date, article.published) == (date, published)


def test_articles_from_records() -> None:
    ready = Article(key="k", text="이미 만든 기사다.", content_hash="h")
    records = [
        {"text": GOOD, "title": "카카오"},
        {"id": "x", "text": "[고민서 기자]\n두 번째 기사다.", "source": "매일경제"},
        {"title": "본문 없는 기록"},
        ready,
        {"id": ["not", "scalar"], "text": "id가 이상하다."},
    ]

    results = list(articles_from_records(records, origin="api"))

    first, *keys = [r.key for r in results if isinstance(r, Article)]
    assert keys == ["api#x", "k"]
    # Without an id a record is its text, wherever it stands in whichever call.
    [again] = articles_from_records([{"title": "다른 제목", "text": GOOD}], origin="api")
    [other] = articles_from_records([{"text": GOOD + " 덧붙인 문장이다."}], origin="api")
    assert first.startswith("api:") and isinstance(again, Article) and again.key == first
    assert isinstance(other, Article) and other.key != first
    # A ready article is passed through with the hash of its text ("h" took every such
    # article for a duplicate of the first).
    assert isinstance(results[3], Article) and results[3].text == ready.text
    assert results[3].content_hash == hashlib.sha256(ready.text.encode()).hexdigest()
    [same] = articles_from_records([results[3]])
    assert same is results[3]
    second = results[1]
    assert isinstance(second, Article)
    assert (second.doc_id, second.path, second.reporter, second.source) == (
        "x", None, "고민서", "매일경제"
    )  # fmt: skip
    assert [str(r) for r in results if isinstance(r, Skipped)] == [
        "api: item 3: record has no 'text'",
        "api: item 5: record 'id' must be a string or an integer",
    ]


def test_a_one_line_record_repeating_its_title_is_kept() -> None:
    brief = {"id": "yna-1", "title": "카카오, 클라우드에 집중", "text": "카카오, 클라우드에 집중"}
    repeated = {"id": "yna-2", "title": "카카오 소식", "text": "카카오 소식\n본문 문장이다."}
    first, second = articles_from_records([brief, repeated])
    assert isinstance(first, Article) and first.text == "카카오, 클라우드에 집중"
    assert isinstance(second, Article) and second.text == "본문 문장이다."  # repeat dropped


# --- HTML ---------------------------------------------------------------------------------------


def test_html_article(tmp_path: Path) -> None:
    article = only_article(load(NEWS_PAGE))

    assert article.title == "한빛전자, 온디바이스 AI 반도체 양산 돌입"
    assert article.date == dt.date(2024, 3, 7)
    assert article.published == dt.datetime(2024, 3, 7, 9, 15)
    assert article.source == "한빛경제"
    assert article.reporter == "김하늘"
    assert article.url == "https://news.hanbit.example/article/2024/03/07/12345"
    assert article.text.startswith("한빛전자가 스마트폰과 노트북에 들어가는 온디바이스")
    assert article.text.endswith('공급 협상을 진행 중"이라고 말했다.')
    assert "2027년까지 연평균 30% 이상 성장할 것으로" in article.text
    for gone in (
        "정치",
        "검색어",
        "본문으로 바로가기",
        "공유하기",
        "많이 본 뉴스",
        "반도체 수출 석 달째 증가",
        "사업자등록번호",
        "개인정보처리방침",
        "무단전재",
        "ⓒ",
    ):
        assert gone not in article.text, gone


def test_html_in_euc_kr(tmp_path: Path) -> None:
    page = NEWS_PAGE.read_text(encoding="utf-8").replace('charset="utf-8"', 'charset="euc-kr"')
    page = page.replace("©", "ⓒ")  # EUC-KR has no U+00A9
    (tmp_path / "page.htm").write_bytes(page.encode("euc-kr"))

    article = only_article(load(tmp_path))

    assert article.text == only_article(load(NEWS_PAGE)).text
    assert article.title == "한빛전자, 온디바이스 AI 반도체 양산 돌입"


# --- walking folders ----------------------------------------------------------------------------


def names(items: Iterable[Path | Skipped], root: Path) -> list[str]:
    return [p.relative_to(root.resolve()).as_posix() for p in items if isinstance(p, Path)]


def test_folders_walk_sorted_skipping_hidden_and_unsupported(tmp_path: Path) -> None:
    for rel in (
        "b/2.txt",
        "a.TXT",
        "b/1.md",
        "c.json",
        "notes.pdf",
        "d/e/f.htm",
        "z.jsonl",
        ".hidden.txt",
        ".git/config.json",
        "b/.cache/x.txt",
        "d/image.png",
    ):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(GOOD, encoding="utf-8")

    listed = list(iter_files([tmp_path]))

    expected = ["a.TXT", "b/1.md", "b/2.txt", "c.json", "d/e/f.htm", "z.jsonl"]
    assert names(listed, tmp_path) == expected
    assert listed == list(iter_files(str(tmp_path)))  # deterministic; a lone str is one path


def test_a_file_reached_twice_is_listed_once(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(GOOD, encoding="utf-8")
    (tmp_path / "loop").symlink_to(tmp_path)  # a cycle must not be followed forever

    listed = list(iter_files([tmp_path / "a.txt", tmp_path]))

    assert names(listed, tmp_path) == ["a.txt"]


# --- the cleaner on its own ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "published"),
    [
        ("입력 2023.05.16 17:31", dt.datetime(2023, 5, 16, 17, 31)),
        ("기사입력 2023-05-16 17:31 | 최종수정 2023-05-16 18:57", dt.datetime(2023, 5, 16, 17, 31)),
        ("입력2023.05.16. 오후 5:31 수정2023.05.16. 오후 6:57", dt.datetime(2023, 5, 16, 17, 31)),
        ("입력 : \n2023-05-16 17:31:54", dt.datetime(2023, 5, 16, 17, 31, 54)),
    ],
)
def test_stamp_lines_give_the_publish_time(stamp: str, published: dt.datetime) -> None:
    text, meta = clean_scraped(f"카카오 재편\n홍길동 기자\n{stamp}\n\n\n카카오가 사업을 정리한다.")

    assert text == "카카오가 사업을 정리한다."
    assert (meta.title, meta.reporter, meta.published) == ("카카오 재편", "홍길동", published)
    assert meta.date == published.date()


@pytest.mark.parametrize(
    ("line", "owner"),
    [
        ("- Copyright ⓒ 디지털데일리. 무단전재 및 재배포 금지 -", "디지털데일리"),
        ("ⓒ 매일경제 & mk.co.kr, 무단전재 및 재배포 금지", "매일경제"),
        ("<저작권자 ⓒ 연합뉴스, 무단 전재-재배포, AI 학습 및 활용 금지>", "연합뉴스"),
        ("저작권자 © 전자신문 무단전재 및 재배포 금지", "전자신문"),
        ("ⓒ 2024 머니투데이", "머니투데이"),
        ("Copyright © The Korea Herald. All rights reserved.", "The Korea Herald"),
    ],
)
def test_copyright_lines_are_dropped_and_name_the_source(line: str, owner: str) -> None:
    text, meta = clean_scraped(f"본문이다.\n{line}")

    assert (text, meta.source) == ("본문이다.", owner)
    assert copyright_owner(line) == owner


def test_body_sentences_with_boilerplate_words_are_kept() -> None:
    body = (
        "저작권자의 동의 없이 무단 전재를 금지했다.\n"
        "수정\n"
        "입력 방식이 바뀌었다고 회사는 설명했다.\n"
        "AI 학습 데이터 무단 사용 논란\n"
        "홍길동 기자간담회"
    )

    assert clean_scraped(body)[0] == body


@pytest.mark.parametrize(
    ("line", "names"),
    [("고민서 기자", "고민서"), ("[고민서 기자]", "고민서"), ("홍길동 특파원", "홍길동"),
     ("김하늘 기자 sky@news.example.com", "김하늘"), ("홍길동·김철수 기자", "홍길동·김철수"),
     ("이 기사가 마음에 들었다면,", None), ("카카오 기자간담회", None)],
)  # fmt: skip
def test_bylines(line: str, names: str | None) -> None:
    assert parse_byline(line) == names


def test_image_notice_keeps_text_after_it() -> None:
    notice = "<이미지를 클릭하시면 크게 보실 수 있습니다> |"
    text, _ = clean_scraped(f"{notice} 연구원이 칩을 보고 있다\n본문.")

    assert text == "연구원이 칩을 보고 있다\n본문."
