"""Cleaning scraped Korean news pages (text or HTML) into article text plus metadata.

Portal pages scraped to text carry navigation, photo-caption markers, bylines, time stamps and
copyright footers on lines of their own. Every rule here removes whole lines only (the image
notice is the one marker cut from the start of a line, keeping what follows it), so an article
sentence is never shortened. A line is dropped only when it matches a known boilerplate shape;
anything unrecognised is kept.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .sanitize import terminal_text

KST = dt.timezone(dt.timedelta(hours=9), "KST")


@dataclass
class ScrapedMeta:
    """Metadata found in scraped text; a field is ``None`` when the text does not give it."""

    title: str | None = None
    date: dt.date | None = None
    published: dt.datetime | None = None
    source: str | None = None
    reporter: str | None = None
    url: str | None = None


# Whole lines of page chrome, compared after collapsing runs of whitespace.
BOILERPLATE_LINES = frozenset(
    {
        # navigation and reader tools
        "본문으로 바로가기",
        "본문 바로가기",
        "글자크기 설정",
        "글자 크기 설정",
        "글자크기",
        "기사 상세",
        "가나다라마바사",
        "기사 읽어주기",
        "기사 본문 듣기",
        "본문 듣기",
        "기사 듣기",
        "음성으로 듣기",
        "본문 요약봇",
        "요약봇",
        "공유하기",
        "공유",
        "구독",
        "구독하기",
        "구독중",
        "인쇄",
        "인쇄하기",
        "스크랩",
        "기사 스크랩",
        "URL 복사",
        "링크 복사",
        "좋아요",
        "댓글",
        "이 기사를 추천합니다",
        "이 기사가 마음에 들었다면,",
        # photo markers (the caption itself, on the next line, is kept)
        "사진설명",
        "사진 설명",
        "사진 확대",
        "이미지 확대",
        "이미지 크게보기",
        # portal category footers
        "이 기사의 카테고리는 언론사의 분류를 따릅니다.",
        "기사가 속한 카테고리는 언론사가 분류합니다.",
        "언론사는 한 기사를 두 개 이상의 카테고리로 분류할 수 있습니다.",
    }
)

_DATETIME = (
    r"(?P<y>\d{4})\s*[-./년]\s*(?P<mo>\d{1,2})\s*[-./월]\s*(?P<d>\d{1,2})\s*[.일]?"
    r"(?:\s*\(\s*[월화수목금토일]\s*\))?"
    r"(?:\s*(?P<ampm>오전|오후|AM|PM)?\s*(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?)?"
)
_DATETIME_RE = re.compile(_DATETIME, re.IGNORECASE)
_PUBLISHED_WORDS = ("입력", "등록", "송고", "게재", "발행")
_STAMP_LABEL = (
    r"(?:기사\s*)?(?:입력|등록|송고|게재|발행)(?:\s*일시?)?"
    r"|(?:최종\s*)?(?:수정|업데이트|승인)(?:\s*일시?)?"
)
_STAMP_TOKEN = re.compile(
    rf"(?P<label>{_STAMP_LABEL})\s*[:：]?\s*(?P<when>{_DATETIME})?", re.IGNORECASE
)
_STAMP_SEPARATORS = " |·,/ㅣ"

_NAMES = r"[가-힣]{2,4}(?:\s*[·,]\s*[가-힣]{2,4})*"
_BYLINE = re.compile(
    rf"[\[(<]?\s*(?P<names>{_NAMES})\s*(?:선임|수석|전문|인턴|객원|대)?\s*(?:기자|특파원)"
    r"(?:\s*[(<]?[\w.+-]+@[\w-]+(?:\.[\w-]+)+[)>]?)?\s*[\])>]?"
)
_PHOTO_CREDIT = re.compile(
    r"[/\[(<]?\s*(?:사진|그래픽|자료|영상)\s*(?:제공|출처)?\s*[=:]\s*[^\[\]()<>]{1,40}[\])>]?"
)
_IMAGE_NOTICE = re.compile(r"<?\s*이미지를\s*클릭하시면\s*크게\s*보실\s*수\s*있습니다\s*>?\s*\|?")

_COPYRIGHT_MARK = re.compile(
    r"[ⓒ©]|\(c\)|\bcopyright\b|all rights reserved|저작권자\s*[ⓒ©(:=]", re.IGNORECASE
)
_REPRINT_BAN = re.compile(r"무단\s*(?:전재|복제).*금지|재배포\s*금지")
_COPYRIGHT_OWNER = re.compile(
    r"(?:[ⓒ©]|\(c\)|copyright|저작권자)\s*(?:(?:[ⓒ©]|\(c\))\s*)?"
    r"(?:(?:19|20)\d{2}(?:\s*[-~]\s*(?:19|20)\d{2})?\s*)?(?P<owner>[^.,&|<>\[\]()\-]+)",
    re.IGNORECASE,
)
_OWNER_TAIL = re.compile(r"\s(?:무단|재배포|all rights).*$", re.IGNORECASE)
# A line ending like a Korean sentence ("...했다.") is article text whatever words it contains.
_SENTENCE_END = re.compile(r"[다요]\s*[.!?][\"'”’)\]]*$")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_SPACES = dict.fromkeys(map(ord, "\u00a0\u3000"), " ")

_META_TAG = re.compile(r"<meta\b[^>]*>", re.IGNORECASE)
_META_ATTR = re.compile(r"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_PUBLISHED_META = {"article:published_time", "og:published_time", "pubdate", "dc.date.issued"}

# A header is the short block above the "입력" stamp in 매일경제-style pages: at most this many
# non-blank lines, none longer than this.
_HEADER_MAX_LINES = 12
_HEADER_MAX_CHARS = 100
_SECTION_MAX_CHARS = 20


def parse_datetime(value: str) -> tuple[dt.date | None, dt.datetime | None]:
    """Parse a news date or date-time string.

    Accepts ``2023-05-16``, ``2023.05.16``, ``2023/05/16``, ``2023년 5월 16일``, any of those
    followed by ``17:31`` or ``17:31:54`` (optionally ``오전``/``오후``), and ISO 8601 date-times.
    Date-times with a UTC offset are converted to Korea time; all returned datetimes are naive
    and in Korea time (KST), the time Korean outlets print, so they compare with each other.

    Args:
        value: The text to parse.

    Returns:
        ``(date, datetime)``: the datetime is ``None`` for a date without a time, and both are
        ``None`` when the text is not a valid date.
    """
    text = " ".join(value.split()).rstrip(".")
    match = _DATETIME_RE.fullmatch(text)
    if match is not None:
        return _from_match(match)
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        parsed = dt.datetime.fromisoformat(iso)
    except ValueError:
        return None, None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(KST).replace(tzinfo=None)
    return parsed.date(), parsed


def _from_match(match: re.Match[str]) -> tuple[dt.date | None, dt.datetime | None]:
    """Build the date and optional datetime from a ``_DATETIME`` match."""
    try:
        day = dt.date(int(match["y"]), int(match["mo"]), int(match["d"]))
        if match["h"] is None:
            return day, None
        hour = int(match["h"])
        ampm = (match["ampm"] or "").upper()
        if ampm in ("오후", "PM") and hour < 12:
            hour += 12
        elif ampm in ("오전", "AM") and hour == 12:
            hour = 0
        when = dt.datetime.combine(day, dt.time(hour, int(match["mi"]), int(match["s"] or 0)))
    except ValueError:
        return None, None
    return day, when


def parse_byline(line: str) -> str | None:
    """The reporter name(s) of a standalone byline such as ``고민서 기자`` or ``[고민서 기자]``."""
    match = _BYLINE.fullmatch(" ".join(line.split()))
    return match["names"] if match else None


def copyright_owner(line: str) -> str | None:
    """The outlet a copyright line names: ``Copyright ⓒ 디지털데일리. ...`` -> ``디지털데일리``."""
    match = _COPYRIGHT_OWNER.search(line)
    if match is None:
        return None
    owner = _OWNER_TAIL.sub("", match["owner"]).strip()
    return owner if 0 < len(owner) <= 30 else None


def _is_copyright(line: str) -> bool:
    if len(line) > 120 or _SENTENCE_END.search(line):
        return False
    return bool(_COPYRIGHT_MARK.search(line) or _REPRINT_BAN.search(line))


def _stamp_tokens(line: str) -> list[re.Match[str]] | None:
    """The label/date pairs of a line made only of "입력 ... 수정 ..." stamps, else ``None``."""
    tokens = list(_STAMP_TOKEN.finditer(line))
    if not tokens or _STAMP_TOKEN.sub(" ", line).strip(_STAMP_SEPARATORS):
        return None
    return tokens


def _normalize(line: str) -> str:
    # Escape sequences and control characters in an article are never text to keep: the
    # index stores, prints and prompts with what is left.
    return terminal_text(line).translate(_INVISIBLE).translate(_SPACES).strip()


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def clean_scraped(text: str, title: str | None = None) -> tuple[str, ScrapedMeta]:
    """Remove portal boilerplate lines from scraped article text and collect its metadata.

    Drops navigation and reader-tool lines, photo markers and credits, standalone bylines,
    "입력/수정" time stamps, copyright and category footers, and (in the 매일경제-style header
    above the stamp) the title line and short section labels such as ``IT·과학``. Blank-line runs
    collapse to one blank line and every line is stripped.

    Args:
        text: The scraped text.
        title: A title known from elsewhere (a JSON record, HTML metadata); a first body line
            repeating it is dropped when more text follows.

    Returns:
        The cleaned text (empty when nothing but boilerplate was left) and the metadata found.
    """
    lines = [_normalize(line) for line in text.splitlines()]
    drop = [False] * len(lines)
    meta = ScrapedMeta()
    first_stamp: int | None = None
    for i, line in enumerate(lines):
        if drop[i] or not line:
            continue
        key = " ".join(line.split())
        notice = _IMAGE_NOTICE.match(key)
        if key in BOILERPLATE_LINES or _PHOTO_CREDIT.fullmatch(key):
            drop[i] = True
        elif notice is not None:
            lines[i] = key[notice.end() :].strip()
            drop[i] = not lines[i]
        elif names := parse_byline(key):
            drop[i] = True
            meta.reporter = meta.reporter or names
        elif (tokens := _stamp_tokens(key)) is not None:
            if _take_stamp(tokens, lines, drop, i, meta) and first_stamp is None:
                first_stamp = i
        elif _is_copyright(key):
            drop[i] = True
            meta.source = meta.source or copyright_owner(key)
    if meta.published is not None:
        meta.date = meta.published.date()
    if first_stamp is not None:
        _take_header_title(lines, drop, first_stamp, meta)
    known_title = title or meta.title
    body = [i for i, line in enumerate(lines) if line and not drop[i]]
    # A first line repeating the title is dropped, unless it is all there is: then the title
    # is the article (a one-line brief), not page chrome.
    if known_title and len(body) > 1 and _same(lines[body[0]], known_title):
        drop[body[0]] = True

    kept: list[str] = []
    for line, dropped in zip(lines, drop, strict=True):
        if dropped or (not line and (not kept or not kept[-1])):
            continue
        kept.append(line)
    return "\n".join(kept).strip(), meta


def _take_stamp(
    tokens: list[re.Match[str]], lines: list[str], drop: list[bool], i: int, meta: ScrapedMeta
) -> bool:
    """Drop a stamp line (and a date on the line after a bare label); record the publish time."""
    stamps = [(m["label"], m["when"]) for m in tokens]
    if stamps[-1][1] is None:
        # "입력 :" with its date on the next non-blank line, as in 매일경제 pages.
        j = next((j for j in range(i + 1, len(lines)) if lines[j]), None)
        if j is not None and _DATETIME_RE.fullmatch(" ".join(lines[j].split()).rstrip(".")):
            stamps[-1] = (stamps[-1][0], lines[j])
            drop[j] = True
    if all(when is None for _, when in stamps):
        return False  # a lone "수정" with no date is not clearly a stamp: keep it
    drop[i] = True
    for label, when in stamps:
        if when is None or meta.published is not None:
            continue
        if any(word in label for word in _PUBLISHED_WORDS):
            day, moment = parse_datetime(when)
            if moment is not None:
                meta.published = moment
            elif day is not None and meta.date is None:
                meta.date = day
    return True


def _take_header_title(lines: list[str], drop: list[bool], stamp: int, meta: ScrapedMeta) -> None:
    """In a short header above the stamp, the last line is the title; short lines above it are
    section labels ("IT·과학"). Both are dropped from the body."""
    header = [i for i in range(stamp) if lines[i] and not drop[i]]
    if not header or len(header) > _HEADER_MAX_LINES:
        return
    if any(len(lines[i]) > _HEADER_MAX_CHARS for i in header):
        return
    title_at = header[-1]
    if _SENTENCE_END.search(lines[title_at]):
        return  # the stamp follows body text, not a headline
    meta.title = lines[title_at]
    drop[title_at] = True
    for i in header[:-1]:
        if len(lines[i]) <= _SECTION_MAX_CHARS:
            drop[i] = True


def clean_html(html: str) -> tuple[str, ScrapedMeta]:
    """Extract an article's main text and metadata from an HTML page.

    trafilatura finds the main text, title, date, site name, author and URL; the text then goes
    through ``clean_scraped``. A page with no sentence-length line left (only menus, link lists
    or footers) counts as having no article.

    Args:
        html: The page source.

    Returns:
        The cleaned text (empty when the page has no article text) and the metadata.

    Raises:
        ImportError: trafilatura cannot be imported.
    """
    import trafilatura

    text, meta, found = "", ScrapedMeta(), {}
    # Precision first; short pages can come out empty or as a menu, so retry favouring recall.
    for favor_recall in (False, True):
        doc = trafilatura.bare_extraction(
            html,
            with_metadata=True,
            favor_recall=favor_recall,
            include_comments=False,
            include_tables=True,
            deduplicate=False,
        )
        found = _as_dict(doc)
        text, meta = clean_scraped(found.get("text") or "", title=found.get("title"))
        if _has_prose(text):
            break
    else:
        return "", meta

    sitename = found.get("sitename") or None
    day, moment = _meta_published(html)
    if day is None:
        day, moment = meta.date, meta.published
    if day is None and found.get("date"):
        day, moment = parse_datetime(found["date"])
    author = (found.get("author") or "").split(";")[0].strip()
    byline = parse_byline(author) or (author if 0 < len(author) <= 40 else None)
    return text, ScrapedMeta(
        title=_strip_site_suffix(found.get("title") or "", sitename) or meta.title,
        date=day,
        published=moment,
        source=sitename or meta.source,
        reporter=meta.reporter or byline,
        url=found.get("url") or None,
    )


def _as_dict(doc: object) -> dict[str, Any]:
    """trafilatura 2 returns a ``Document``, 1.x a dict."""
    if hasattr(doc, "as_dict"):
        return dict(doc.as_dict())
    return dict(doc) if isinstance(doc, Mapping) else {}


def _has_prose(text: str) -> bool:
    """At least one sentence-length line: menus and link lists have none."""
    return any(len(line) >= 20 and " " in line for line in text.splitlines())


def _strip_site_suffix(title: str, sitename: str | None) -> str | None:
    """``"제목 - 한빛경제"`` -> ``"제목"`` when the page names its site."""
    title = title.strip()
    if sitename and title.endswith(sitename) and len(title) > len(sitename):
        title = title[: -len(sitename)].rstrip(" -|:·").strip() or title
    return title or None


def _meta_published(html: str) -> tuple[dt.date | None, dt.datetime | None]:
    """``(date, datetime)`` from an ``article:published_time``-style meta tag."""
    for tag in _META_TAG.findall(html[:200_000]):
        attrs = {m[1].lower(): m[2] or m[3] for m in _META_ATTR.finditer(tag)}
        name = (attrs.get("property") or attrs.get("name") or attrs.get("itemprop") or "").lower()
        if name in _PUBLISHED_META and attrs.get("content"):
            day, moment = parse_datetime(attrs["content"])
            if day is not None:
                return day, moment
    return None, None
