"""English names of countries, their peoples and languages, cities, and Korea's provinces
and metropolitan cities, in Korean.

A Korean article writes them as Korean translates them (Poland as 폴란드, Japan as 일본, Warsaw
as 바르샤바), not as they sound, so the phonetic spelling of `rag.names.Spellings` finds
other words: Japan as 재판, China as 친노, Korea as 콜라. The Unicode Common Locale Data
Repository (CLDR, through Babel) has both languages' names of every country (territory), of
every language (일본어: "Japanese" is the country's people and language, 일본 without 어) and of
the cities that name time zones (about 420). A language counts when it is named after a
country (폴란드어), since many are named like common words (Dari: 다리어). What news writes
and CLDR does not is `ALIASES`, and Korea's provinces and metropolitan cities are `REGIONS`
(CLDR names Seoul only); the Korean places Korean writes two ways (북한 and 조선민주주의인민공화국,
서울시 and 서울특별시, 경북 and 경상북도) are `OTHER_NAMES`.
"""

from __future__ import annotations

import functools
import re

from . import institutions

# Names news uses that CLDR writes otherwise: its English names are the long forms (South
# Korea, United States), and its Korean 오스트레일리아 is written 호주 in Korean news.
ALIASES: dict[str, tuple[str, ...]] = {
    "korea": ("한국", "대한민국"),
    "south korea": ("한국",),
    "korean": ("한국",),  # 한국어 is named after 한국, which CLDR calls 대한민국
    "america": ("미국",),
    "american": ("미국",),
    "britain": ("영국",),
    "british": ("영국",),
    "australia": ("호주",),
    "australian": ("호주",),
    "swiss": ("스위스",),
    "turkey": ("터키", "튀르키예"),  # CLDR's English name is Türkiye now; older news writes 터키
    "turkish": ("터키", "튀르키예"),
    "north korean": ("북한",),
    "south korean": ("한국",),
}
# Korean names of places that Korean itself writes two ways, each way round (`OTHER_NAMES`):
# - countries that Korean encyclopaedias and Wikinews call by their official names where
#   people and most news use the short one (북한 is 조선민주주의인민공화국 in Korean Wikipedia
#   and Wikinews); CLDR has only the short names;
# - cities and provinces news calls by their short names (서울시, 부산시, 제주도) and
#   encyclopaedias, Wikinews and official text by their full ones (서울특별시, 부산광역시,
#   제주특별자치도). Not 광주: 광주시 is also a city of 경기도.
_OFFICIAL = {
    "북한": ("조선민주주의인민공화국", "북조선"),
    "남한": ("대한민국",),
    "한국": ("대한민국",),
    "중국": ("중화인민공화국",),
    "대만": ("중화민국", "타이완"),
    "미국": ("미합중국",),
    "러시아": ("러시아연방",),
    "영국": ("연합왕국",),
}
_FULL_NAMES = {
    "서울시": ("서울특별시",),
    "세종시": ("세종특별자치시",),
    **{f"{city}시": (f"{city}광역시",) for city in ("부산", "대구", "인천", "대전", "울산")},
    "제주도": ("제주특별자치도",),
    "강원도": ("강원특별자치도",),
    # The provinces news calls by two syllables (경북 지진); 전북 is 전북특별자치도 since 2024.
    **{
        f"{short}": (f"{full}도",)
        for short, full in (
            ("충북", "충청북"),
            ("충남", "충청남"),
            ("전북", "전라북"),
            ("전남", "전라남"),
            ("경북", "경상북"),
            ("경남", "경상남"),
        )
    },
}
# Korea's provinces and metropolitan cities by their English names (CLDR names only Seoul):
# "North Gyeongsang Province", "Gyeongsangbuk-do" or "North Gyeongsang" is 경상북도 (or 경북),
# Daegu 대구 (대구광역시, 대구시).
_PROVINCES = {
    "Gyeonggi": ("Gyeonggi", ("경기도", "경기")),
    "Gangwon": ("Gangwon", ("강원도", "강원특별자치도", "강원")),
    "North Chungcheong": ("Chungcheongbuk", ("충청북도", "충북")),
    "South Chungcheong": ("Chungcheongnam", ("충청남도", "충남")),
    "North Jeolla": ("Jeollabuk", ("전라북도", "전북특별자치도", "전북")),
    "South Jeolla": ("Jeollanam", ("전라남도", "전남")),
    "North Gyeongsang": ("Gyeongsangbuk", ("경상북도", "경북")),
    "South Gyeongsang": ("Gyeongsangnam", ("경상남도", "경남")),
    "Jeju": ("Jeju", ("제주도", "제주특별자치도", "제주")),
    # The metropolitan cities, which CLDR does not name either.
    **{
        english: (english, (korean, f"{korean}광역시", f"{korean}시"))
        for english, korean in (
            ("Busan", "부산"),
            ("Daegu", "대구"),
            ("Incheon", "인천"),
            ("Gwangju", "광주"),
            ("Daejeon", "대전"),
            ("Ulsan", "울산"),
        )
    },
    "Sejong": ("Sejong", ("세종", "세종특별자치시", "세종시")),
}
REGIONS: dict[str, tuple[str, ...]] = {"jeju island": _PROVINCES["Jeju"][1]}
for _english, (_romanized, _koreans) in _PROVINCES.items():
    _city = not _koreans[0].endswith("도")
    _forms = ("City", "Metropolitan City") if _city else ("Province",)
    for _form in (_english, *(f"{_english} {f}" for f in _forms), f"{_romanized}-do"):
        if not (_city and _form.endswith("-do")):
            REGIONS[_form.lower()] = _koreans
# Not places, but written in Korean news its own way, never as English spells it: a question
# about COVID-19 over articles writing 코로나19 was refused for not naming it.
TERMS: dict[str, tuple[str, ...]] = {
    "covid-19": ("코로나19", "코로나바이러스감염증", "신종 코로나바이러스", "코로나"),
    "covid": ("코로나19", "코로나"),
    "coronavirus": ("코로나바이러스", "코로나19", "코로나"),
}
OTHER_NAMES: dict[str, tuple[str, ...]] = {}  # each name -> its other names
for _short, _names in (*_OFFICIAL.items(), *_FULL_NAMES.items()):
    OTHER_NAMES[_short] = (*OTHER_NAMES.get(_short, ()), *_names)
    for _name in _names:
        OTHER_NAMES[_name] = (*OTHER_NAMES.get(_name, ()), _short)
ADJECTIVES = frozenset(
    {"korean", "american", "british", "australian", "swiss", "turkish"}
    | {"north korean", "south korean"}
)
# A people named after its country, as English makes the word: America-n, Chile-an,
# Brazil-ian, Canad(a)-ian, Mexic(o)-an, Taiwan-ese, Iraq-i. A candidate counts only if it is
# an English word (`rag.names.translatable`'s list), so Canadan is no name; the endings keep
# out words made by chance (chili from Chile, peri from Peru, chai from Chad).
_PEOPLE_OF_WHOLE = ("an", "ian", "ese")  # and "n" after a, "i" after a consonant
_PEOPLE_OF_STEM = ("an", "ian")  # the country's name less its last vowel
_ASIDE = re.compile(r"\s*\(.*?\)")  # 홍콩(중국 특별행정구), Myanmar (Burma)
_KOREAN = re.compile(r"[가-힣]+(?: [가-힣]+)*")  # not "중부, 노스다코타" (a county's zone)


def korean_names(name: str) -> tuple[str, ...]:
    """The Korean names of an English country, people, language or city name, or of a
    Korean public body's (`rag.institutions`), or of a term Korean writes its own way
    (`TERMS`), most usual first ("Polish" -> 폴란드; "South Korea" -> 한국, 대한민국; "Fair
    Trade Commission" -> 공정거래위원회, 공정위; "COVID-19" -> 코로나19), or () if it is none."""
    key = " ".join(name.lower().split())
    return _table()[0].get(key, ()) or TERMS.get(key, ()) or institutions.korean_names(name)


@functools.cache
def korean_places() -> frozenset[str]:
    """Every Korean name of a country, people, language or city that `korean_names` gives
    (미국, 바르샤바), and each name of `OTHER_NAMES` (조선민주주의인민공화국, 인천광역시): a
    name that is a place's, not a person's ("미국 대통령", "인천광역시 옹진군")."""
    return frozenset(k for names in _table()[0].values() for k in names) | frozenset(OTHER_NAMES)


@functools.cache
def korean_countries() -> frozenset[str]:
    """The Korean names of every country (일본, 미국, 호주), not of its cities (서울 기상청 is
    Korea's)."""
    from babel import Locale

    territories = Locale("ko").territories
    names = {_ASIDE.sub("", n).strip() for code, n in territories.items() if code.isalpha()}
    return frozenset(names | {k for koreans in ALIASES.values() for k in koreans})


def of_people(name: str) -> bool:
    """Whether ``name`` is a people's or a language's (Polish, British), not a place's: it
    describes something of the country ("Who succeeded Liz Truss as British prime
    minister?"), and an article about the country names it without being about the thing."""
    return " ".join(name.lower().split()) in _table()[1]


@functools.cache
def _table() -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    from babel import Locale

    from .names import english_words

    en, ko = Locale("en"), Locale("ko")
    table: dict[str, list[str]] = {}

    def add(english: str, korean: str) -> None:
        english = _ASIDE.sub("", english).lower().strip()
        korean = _ASIDE.sub("", korean).strip()
        known = table.setdefault(english, []) if english else []
        if english and len(korean) >= 2 and _KOREAN.fullmatch(korean) and korean not in known:
            known.append(korean)

    words = english_words()
    peoples: dict[str, set[str]] = {}
    adjectives: set[str] = set(ADJECTIVES)
    for code, english in en.territories.items():
        if code.isalpha() and code in ko.territories:  # not regions such as 001 (World)
            add(english, ko.territories[code])
            stem = _ASIDE.sub("", english).lower()
            found = {stem + end for end in _PEOPLE_OF_WHOLE}
            if stem.endswith("a"):
                found.add(stem + "n")
            elif stem[-1:] not in "aeiouy":
                found.add(stem + "i")
            if stem[-1:] in "aeoy":
                found |= {stem[:-1] + end for end in _PEOPLE_OF_STEM}
            if stem.endswith("s"):  # the Philippines: Philippine
                found.add(stem[:-1])
            for people in found & words:
                peoples.setdefault(people, set()).add(ko.territories[code])
    for people, countries in peoples.items():
        if len(countries) == 1:  # not Nigerian, which Niger and Nigeria would both make
            add(people, countries.pop())
            adjectives.add(people)
    countries = set(ko.territories.values())
    for code, english in en.languages.items():
        korean = ko.languages.get(code, "").removesuffix("어")
        if korean in countries:  # 폴란드어: "Polish" is 폴란드's; not Dari (다리어) or Cree
            add(english, korean)
            adjectives.add(english.lower())
    for zone, names in ko.time_zones.items():
        if "city" in names:
            add(zone.rsplit("/", 1)[-1].replace("_", " "), names["city"])
    for english, koreans in (*ALIASES.items(), *REGIONS.items()):
        table[english] = [*koreans, *(k for k in table.get(english, []) if k not in koreans)]
    names = {english: tuple(koreans) for english, koreans in table.items() if koreans}
    places = {_ASIDE.sub("", english).lower() for english in en.territories.values()}
    return names, frozenset(adjectives - places)  # Nauru is a language and a country
