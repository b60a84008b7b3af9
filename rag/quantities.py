"""Quantities in text, compared by value: 1,406억 원 = 1406억원 = 140.6 billion won = ₩140.6bn.

Hand-written on purpose. The PyPI packages that read Korean numbers (korean-number,
kr-number, korcount, kornum) convert a string that *is* a number ("천이백") but do not find
amounts in running text with their units; quantulum3 and text2num read English (and other
European languages) only; Kiwi tags the pieces (``1406``/SN ``억``/NR ``원``/NNB) but leaves
the arithmetic and the English side to us. A few regular expressions cover what news
articles and answers about them write: digits with separators, the Korean myriad units
(만/억/조, also 천/백 before them), English multipliers (thousand/million/billion/trillion,
k/m/bn/tn), currencies, percentages, years, dates and counters (명, 개, 곳, 건, ...), plus the
native numerals before a counter (세 명, 두 곳).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_KO_BIG = {"만": 1e4, "억": 1e8, "조": 1e12}
_KO_SMALL = {"천": 1e3, "백": 1e2}
_EN_MULT = {
    "thousand": 1e3,
    "k": 1e3,
    "million": 1e6,
    "mn": 1e6,
    "m": 1e6,
    "billion": 1e9,
    "bn": 1e9,
    "b": 1e9,
    "trillion": 1e12,
    "tn": 1e12,
    "t": 1e12,
}
# Unit words after a number, longest first so "개사" wins over "개". The value is the
# unit's kind: amounts in one currency, a share, a counter class or a calendar field.
_UNITS = {
    **dict.fromkeys(["원", "won", "krw"], "KRW"),
    **dict.fromkeys(["달러", "불", "dollars", "dollar", "usd"], "USD"),
    **dict.fromkeys(["엔", "yen", "jpy"], "JPY"),
    **dict.fromkeys(["유로", "euros", "euro", "eur"], "EUR"),
    **dict.fromkeys(["위안", "yuan", "cny"], "CNY"),
    **dict.fromkeys(["%p", "%포인트", "퍼센트포인트", "percentage points", "포인트"], "pp"),
    **dict.fromkeys(["%", "퍼센트", "프로", "percent", "per cent", "pct"], "%"),
    **dict.fromkeys(["배", "times", "fold"], "times"),
    **dict.fromkeys(["명", "people", "persons", "person"], "명"),
    **dict.fromkeys(["개사", "곳", "companies", "firms"], "곳"),
    **dict.fromkeys(["개국", "countries"], "개국"),
    **dict.fromkeys(["개"], "개"),
    **dict.fromkeys(["건", "cases"], "건"),
    **dict.fromkeys(["회", "차례", "번째", "번"], "회"),
    **dict.fromkeys(["분기", "quarter"], "분기"),
    **dict.fromkeys(["년간", "년", "years", "year"], "년"),
    **dict.fromkeys(["개월", "months", "month"], "개월"),
    **dict.fromkeys(["월"], "월"),
    **dict.fromkeys(["일", "days", "day"], "일"),
    **dict.fromkeys(["시간", "hours", "hour"], "시간"),
    **dict.fromkeys(["분", "minutes", "minute"], "분"),
    **dict.fromkeys(["초", "seconds", "second"], "초"),
    **dict.fromkeys(["세", "살"], "세"),
}
_CURRENCY_SIGNS = {"₩": "KRW", "krw": "KRW", "$": "USD", "us$": "USD", "usd": "USD", "€": "EUR"}
_CURRENCY_SIGNS |= {"¥": "JPY", "£": "GBP"}
_UNIT_WORDS = sorted(_UNITS, key=len, reverse=True)
# Korean units are glued to the number or follow one space; English ones follow one space
# and must end at a word boundary ("10 days" but not "10 daylong").
_UNIT_RE = "|".join(re.escape(u) + (r"(?![a-z])" if u[0].isascii() else "") for u in _UNIT_WORDS)
# "68억8800만", "1천억", "1,406": groups ending in a myriad unit, then a last group.
_KO_GROUP = rf"(?:{_NUM})(?:\s?[천백](?=\s?[만억조]|\s?[^\s\w]|\s|$))?(?:\s?[만억조])?"
_KO_BIG_GROUP = rf"(?:{_NUM})(?:\s?[천백])?\s?[만억조]"
_QUANTITY = re.compile(
    rf"(?P<sign>us\$|[₩$€¥£]|krw\s?|usd\s?)?"
    rf"(?<![A-Za-z0-9.,])(?P<number>(?:{_KO_BIG_GROUP}\s?)*{_KO_GROUP})"
    rf"(?:\s?(?P<mult>thousand|million|billion|trillion|bn|tn|mn|[kmbt])(?![a-z]))?"
    rf"(?:\s?(?P<unit>{_UNIT_RE}))?",
    re.IGNORECASE,
)
_GROUP = re.compile(rf"(?P<n>{_NUM})\s?(?P<small>[천백])?\s?(?P<big>[만억조])?")
# English number words count only before a unit ("three years"; "one of" is not one).
_WORDS = "one two three four five six seven eight nine ten eleven twelve".split()
_WORD_QUANTITY = re.compile(
    rf"\b(?P<word>{'|'.join(_WORDS)})\s+(?P<unit>years?|months?|days?|times|people|companies)\b",
    re.IGNORECASE,
)
# Native Korean numerals are only numbers before a counter ("세 명"; "세계" is not one).
_NATIVE = {"한": 1, "두": 2, "세": 3, "네": 4, "다섯": 5, "여섯": 6, "일곱": 7, "여덟": 8}
_NATIVE |= {"아홉": 9, "열": 10, "스무": 20}
_NATIVE_QUANTITY = re.compile(
    rf"(?<![가-힣])(?P<word>{'|'.join(_NATIVE)})\s?(?P<unit>명|곳|개|건|차례|번|가지)"
)
_DATE = re.compile(r"(?<!\d)((?:19|20)\d\d)[-./](\d{1,2})[-./](\d{1,2})(?!\d)")
_MONTHS = "january february march april may june july august september october november december"
_MONTH = re.compile(rf"\b({'|'.join(m[:3] + '(?:' + m[3:] + ')?' for m in _MONTHS.split())})\b")


@dataclass(frozen=True)
class Quantity:
    """A number found in text: its value, unit kind (or ``None``) and where it was written.

    ``tolerance`` is half a unit of the last digit written, scaled like the value: "141
    billion" stands for anything that rounds to it, "1406억" is exact to 50 million.
    """

    value: float
    unit: str | None
    start: int
    end: int
    text: str
    tolerance: float = 0.0

    def matches(self, other: Quantity) -> bool:
        """Whether ``other`` (from a source) has this value, in a compatible unit."""
        if not compatible(self.unit, other.unit):
            return False
        return abs(self.value - other.value) <= max(self.tolerance, abs(self.value) * 1e-9)


def compatible(claim: str | None, source: str | None) -> bool:
    """Whether a claim's unit fits a source's: equal, or the claim names none (a bare
    "1406억" may be any 1406억, but "17일" is not the "17" of a clock time).

    A year and a count of years share ``년``; "20년간" and "2019년" differ by value anyway.
    """
    return claim is None or claim == source or {claim, source} <= {"개", "곳"}


def quantities(text: str) -> list[Quantity]:
    """Every quantity written in ``text``, in order."""
    found = _dates(text)
    dates = [(q.start, q.end) for q in found]
    for m in _QUANTITY.finditer(text):
        number = m.group("number")
        before = text[m.start("number") - 1] if m.start("number") > 0 else " "
        if (before.isascii() and before.isalpha()) or any(a <= m.start() < b for a, b in dates):
            continue  # "코GPT2.0", "B2B": a digit inside a name is part of the name
        value, tolerance = _korean_value(number)
        mult = (m.group("mult") or "").lower()
        unit_word = (m.group("unit") or "").lower()
        if mult in {"b", "t", "m", "k"} and not (m.group("sign") or unit_word):
            # A lone letter after a number is an amount multiplier only with a currency
            # ("$3b", "₩140.6b won"); otherwise it is too often a label ("3D", "5G").
            mult = ""
        scale = _EN_MULT.get(mult, 1.0)
        unit = _UNITS.get(unit_word) if unit_word else _counter(text, m.end())
        sign = (m.group("sign") or "").strip().lower()
        if sign:
            unit = _CURRENCY_SIGNS.get(sign, unit)
        end = m.end() if (mult or unit_word) else m.end("number")
        start = m.start("sign") if sign else m.start("number")
        # Half a unit of the last digit, but never more than 0.5 %: "1천억" is not 1406억.
        slack = min(tolerance * scale, abs(value * scale) * 0.005)
        found.append(Quantity(value * scale, unit, start, end, text[start:end], slack))
    for m in _WORD_QUANTITY.finditer(text):
        value = float(_WORDS.index(m.group("word").lower()) + 1)
        unit = _UNITS.get(m.group("unit").lower())
        found.append(Quantity(value, unit, m.start(), m.end(), m.group(0), 0.5))
    for m in _NATIVE_QUANTITY.finditer(text):
        if not any(q.start <= m.start() < q.end for q in found):
            value = float(_NATIVE[m.group("word")])
            unit = _UNITS.get(m.group("unit"), m.group("unit"))
            found.append(Quantity(value, unit, m.start(), m.end(), m.group(0), 0.5))
    return sorted(found, key=lambda q: q.start)


_PARTICLES = set("이가은는을를의에와과도만로")


def _counter(text: str, end: int) -> str | None:
    """A Korean counter glued to the number that the unit list lacks ("8경기", "31승"):
    its first two syllables, less a particle ("4.71을" has none)."""
    m = re.match(r"[가-힣]{1,2}", text[end:])
    if not m:
        return None
    word = m.group(0)
    if word[-1] in _PARTICLES:
        word = word[:-1]
    return f"~{word}" if word else None


def _dates(text: str) -> list[Quantity]:
    """Year, month and day of ISO-like dates and English month names ("May" is month 5)."""
    out = []
    for m in _DATE.finditer(text):
        for group, unit in ((1, "년"), (2, "월"), (3, "일")):
            a, b = m.start(group), m.end(group)
            out.append(Quantity(float(m.group(group)), unit, a, b, text[a:b]))
    for m in _MONTH.finditer(text.lower()):
        month = next(i for i, name in enumerate(_MONTHS.split(), 1) if name[:3] == m.group(1)[:3])
        if m.group(1) == "may" and not text[m.start()].isupper():
            continue  # the verb "may"
        out.append(Quantity(float(month), "월", m.start(), m.end(), text[m.start() : m.end()]))
    return out


def _korean_value(number: str) -> tuple[float, float]:
    """Value of "1,406", "68억8800만", "1천억", "140.6" and half a unit of its last digit."""
    total = 0.0
    tolerance = 0.0
    for g in _GROUP.finditer(number):
        digits = g.group("n").replace(",", "")
        scale = _KO_SMALL.get(g.group("small") or "", 1.0) * _KO_BIG.get(g.group("big") or "", 1.0)
        total += float(digits) * scale
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        tolerance = 0.5 * 10.0**-decimals * scale
    return total, tolerance


def match_all(claim: list[Quantity], source: list[Quantity]) -> list[Quantity]:
    """The quantities of ``claim`` that no quantity of ``source`` matches."""
    return [q for q in claim if not any(q.matches(s) for s in source)]
