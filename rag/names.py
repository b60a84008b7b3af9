"""English names against Hangul ones: romanise, reduce both to a phonetic key, compare.

"Kakao Brain" and 카카오브레인 (anyascii: KaKaOBeuLeIn) both become ``kakaplan``; a look-alike
(카카오엔터프라이즈) is close but not equal. Used by `rag.answerable` for English questions
over Korean articles.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

from . import institutions
from .korean import Token, english_stopwords, morphemes
from .places import korean_countries, korean_names, of_people
from .support import QUESTION_WORDS

# Romanised-name similarity (1 - edit distance / length): a match, and a look-alike.
MIN_NAME_SIMILARITY = 0.8
NEAR_NAME_SIMILARITY = 0.55
# A name's key shorter than this ("Kim": kam) matches too many words to be looked up alone.
MIN_SPELT_KEY = 4
_HANGUL_WORD = re.compile(r"[\uac00-\ud7a3]{2,}")

_NOUNS = frozenset({"NNP", "NNG", "SL", "SH", "XR"})
# Suffixes that say what kind of thing a Korean name is: a vessel or rocket (호), a city,
# county, province, district or town (시 군 도 구 동), a mountain, river or island (산 강 섬),
# a station or port (역 항), a party (당), a company's group (삼성그룹 = Samsung, which Kiwi
# reads as one proper noun).
_KIND_SUFFIXES = (*"호시군도구동산강섬역항당", "그룹")
# A capitalised word, or one opening with a lower-case letter before a capital (iPhone, eBay).
# Words joined by "of" or "for" are one name: the Bank of Korea, the Ministry of Foreign
# Affairs, the Centers for Disease Control.
_LATIN_NAME = re.compile(
    r"(?:[A-Z]|\b[a-z](?=[A-Z]))[\w'’.-]*(?:\s+(?:(?:of|for)\s+(?:the\s+)?)?[A-Z][\w'’.-]*)*"
)
_JOINING = frozenset({"of", "for", "the"})
_OF = re.compile(r"\s+(?:of|for)\s+(?:the\s+)?")
# "NASA-funded", "Seoul-based": the name is what comes before the hyphen.
_MODIFIER = re.compile(r"-(?:funded|based|led|owned|backed|born|made|run|bound|linked)\b", re.I)
_MONTH_NAME = re.compile(
    r"\b(January|February|March|April|June|July|August|September|October|November|December|"
    r"May(?=,?\s+\d)|(?:(?<=\d )|(?<=\bin )|(?<=\bsince )|(?<=\buntil )|(?<=\bof ))May)\b"
)
MONTHS = {
    m: n
    for n, m in enumerate(
        "january february march april may june july august september october november "
        "december".split(),
        1,
    )
}


def latin_names(question: str) -> list[str]:
    """Capitalised word runs that are names: not question words, not all-caps acronyms, not
    month names (`months`). A run joined by "of" is one name when what comes before "of" is
    made of English words (the Bank of Korea, the Ministry of Unification), and two names
    otherwise (Kakao Enterprise of Korea)."""
    question = re.sub(r"['’]s\b", "", question)  # Kakao Brain's
    question = _MODIFIER.sub(",", question)  # "Seoul-based Kakao" names two
    question = _MONTH_NAME.sub(",", question)
    # A public body's name is one name, "and" or a comma in it: the Ministry of Employment
    # and Labor, the Ministry of Culture, Sports and Tourism (`rag.institutions`).
    names, question = institutions.cut(question)
    for run in _LATIN_NAME.findall(question):
        parts = _OF.split(run)
        if len(parts) > 1 and translatable(parts[0]):
            parts = [run]
        for part in parts:
            words = part.split()
            if question.startswith(part) and words[0].lower() in english_stopwords():
                words = words[1:]  # capitalised only as the first word: "Has Kakao Enterprise"
            words = [
                w for w in words if w in _JOINING or w.lower().strip(".") not in QUESTION_WORDS
            ]
            words = [w for w in words if not (w.isupper() and len(w) <= 5)]
            while words and words[0] in _JOINING:  # "Which of Japan": Japan
                words = words[1:]
            while words and words[-1] in _JOINING:  # "President of NASA": President
                words = words[:-1]
            # One capitalised word opening the question is a name only if it is a place
            # ("Japan beat …"): "Okay, …", "Pls …" and "Floods …" are capitalised there too.
            opening = len(words) == 1 and question.startswith(words[0])
            if words and not (opening and not korean_names(words[0])):
                names.append(" ".join(words))
    return names


def translatable(name: str) -> bool:
    """Whether every word of an English name is an English word ("Trade Day", "Centers for
    Disease Control", "Steve Jobs"). A Korean article may translate such a name (무역의날,
    질병관리본부) instead of romanising it, so a passage without it may still be about it. A
    name with a word no dictionary holds (Kakao, Coupang, Kyung-jin, Korea) is written in
    Hangul as it sounds, or as `rag.places` gives it."""
    words = english_words()
    for word in re.split(r"[\s-]+", name.lower()):
        word = word.strip(".'’")
        if word and word not in words and not (word.endswith("s") and word[:-1] in words):
            return False
    return True


def hybrid(name: str) -> tuple[str, str] | None:
    """A name that opens with a proper name and ends in English words, split there
    ("Busan Savings Bank": Busan, Savings Bank), or None. Korean spells the first part by
    sound and translates the rest: 부산저축은행, 삼성전자 (Samsung Electronics), 김포공항
    (Gimpo Airport), 종로경찰서 (Jongno Police Station)."""
    words = name.split()
    proper = [i for i, w in enumerate(words) if not translatable(w)]
    if not proper or proper[-1] == len(words) - 1:
        return None
    return " ".join(words[: proper[-1] + 1]), " ".join(words[proper[-1] + 1 :])


def prefixed(head: str, candidates: Iterable[str]) -> list[tuple[str, str]]:
    """Each name of ``candidates`` that opens with ``head`` in Hangul (by sound, `_same_name`,
    or as a place's Korean name) and goes on, with what follows the head: (부산저축은행,
    저축은행) for Busan."""
    places = korean_names(head)
    key = phonetic(_spoken(head))  # once, not for every prefix of every name
    return [
        (name, name[k:])
        for name in candidates
        for k in range(2, len(name))
        if _HANGUL_WORD.fullmatch(name[k:])
        and (name[:k] in places or _same_name(head, key, name[:k]))
    ]


def _same_name(latin: str, key: str, hangul: str) -> bool:
    """Whether a short Latin name (with its phonetic ``key``) is a short Hangul one: the
    same key, or keys and letters each as close as `name_similarity` wants (Jongno: 종로,
    JongLo). A key alone is too forgiving in a few letters: Busan (paJan) is not 대전
    (taJan), Gimhae (kamha) not 김포 (kampa)."""
    from rapidfuzz.distance import Levenshtein

    spelt = romanize(hangul)
    other = phonetic(spelt)
    if key == other:
        return True
    close = Levenshtein.normalized_similarity(key, other) >= MIN_NAME_SIMILARITY
    letters = Levenshtein.normalized_similarity(latin.lower(), spelt.lower())
    return close and letters >= MIN_NAME_SIMILARITY


@functools.cache
def english_words() -> frozenset[str]:
    from english_words import get_english_words_set

    return frozenset(get_english_words_set(["web2"], lower=True))


def match_names(
    names: list[str], tokens: list[Token], text: str, accepted: Iterable[str] = ()
) -> tuple[list[str], list[str], tuple[str, str] | None]:
    """The names the window gives (literally, translated or romanised), the Hangul names
    that give them, and a name it does not give while it gives a look-alike (``(name,
    look-alike)``). A name the window writes in Latin letters may be in Hangul too (리즈
    트러스 beside "Liz Truss"): its Hangul names are given as well, so that the question's
    own person is not taken for the person it asks about. Hangul names ``accepted`` as a
    question's name already (`rag.translated`: 부산저축은행 for Busan Savings Bank), or
    part of one, are no look-alike."""
    accepted = list(accepted)
    candidates = hangul_names(tokens)
    matched: list[str] = []
    given: list[str] = []
    near: tuple[str, str] | None = None
    plain = "".join(text.split())
    proper = {t.form for t in tokens if t.tag == "NNP"} | set(candidates)
    nouns = {t.form for t in tokens if t.tag == "NNG"}
    bodies = institutions.korean_bodies()
    asked = {k for name in names for k in korean_names(name)}
    for name in names:
        # A place by its Korean name (Poland: 폴란드, `rag.places`), as a proper noun of the
        # window (Sudan is not 수단, a means; Oman not 오만), or inside a word from three
        # syllables on (이라크 in 이라크전). Not a people's or language's (Polish, British),
        # which an article about the country gives without being about what is asked.
        # A Korean public body (`rag.institutions`) likewise, its short name as a common
        # noun too (국회, 헌재), but not another country's (일본 기상청, 미 국방부).
        translated = [
            k
            for k in ([] if of_people(name) else korean_names(name))
            if (
                k in proper
                or (len(k) >= 3 and "".join(k.split()) in plain)
                or (k in bodies and k in nouns)
            )
            and not foreign(k, text, asked)
        ]
        # After its first mention a foreign person is named by the family name alone (잡스
        # for Steve Jobs): a name of two or more words also matches by its last word.
        last = name.split()[-1] if " " in name else ""
        scored = [
            (max(name_similarity(name, c), name_similarity(last, c) if last else 0.0), c)
            for c in candidates
        ]
        best, which = max(scored, default=(0.0, ""))
        if best < MIN_NAME_SIMILARITY and (kind := _of_kind(name, [*candidates, *nouns])):
            best, which = MIN_NAME_SIMILARITY, kind  # Boryeong Lake: 보령호
        if name.lower() in text.lower() or translated or best >= MIN_NAME_SIMILARITY:
            matched.append(name)
            given.extend(translated[:1] or ([which] if best >= MIN_NAME_SIMILARITY else []))
            if " " in name and not translated:  # 리즈 for Liz, written apart from 트러스
                given.extend(
                    c
                    for c in candidates
                    if c not in given
                    and any(name_similarity(w, c) >= MIN_NAME_SIMILARITY for w in name.split())
                )
        elif (
            best >= NEAR_NAME_SIMILARITY
            and near is None
            and same_start(name, which)
            and not any(which in a for a in accepted)
        ):
            near = (name, which)
    return matched, given, near


# What a one-syllable suffix says a Korean place is, in English: 보령호 is Boryeong Lake, 한강
# the Han River, 서울역 Seoul Station, 한라산 Mount Halla, 에게해 the Aegean Sea.
_KINDS = {
    "lake": "호",
    "river": "강",
    "mountain": "산",
    "mount": "산",
    "station": "역",
    "port": "항",
    "harbor": "항",
    "harbour": "항",
    "sea": "해",
    "palace": "궁",
    "temple": "사",
    "island": "도섬",
}


def _of_kind(name: str, candidates: Iterable[str]) -> str:
    """The Hangul name of ``candidates`` (proper nouns, and common nouns: Kiwi reads 보령호 as
    one) that is English ``name``'s head and kind, or "": the head by sound, the kind as the
    suffix Korean gives it (Boryeong Lake: 보령호; Mount Halla: 한라산; not 보령호 for the
    Boryeong River). "Mount" comes first in English, the other kinds last."""
    words = name.split()
    if len(words) < 2:
        return ""
    first = words[0].lower() == "mount"
    kind, head = (words[0], words[1:]) if first else (words[-1], words[:-1])
    suffixes = _KINDS.get(kind.lower(), "")
    for hangul in candidates:
        of_kind = len(hangul) >= 2 and hangul[-1] in suffixes
        if of_kind and name_similarity(" ".join(head), hangul[:-1]) >= MIN_NAME_SIMILARITY:
            return hangul
    return ""


# Countries news names by a syllable before a body of theirs: 미 국무부, 중 외교부.
_COUNTRY_SYLLABLES = {"미": "미국", "중": "중국", "일": "일본", "러": "러시아"}
# Either Korea: the table's bodies are South Korea's, but for 조선중앙통신 (북한 조선중앙통신).
_KOREA = frozenset({"한국", "대한민국", "남한", "남측", "우리", "우리나라", "북한", "북", "조선"})


def foreign(korean: str, text: str, asked: Iterable[str] = ()) -> bool:
    """Whether ``text`` writes the Korean name of a Korean public body (통일부, 기상청;
    `rag.institutions`) only as another country's: right after that country's name (일본
    기상청, 일본의 기상청, 미 국방부), which ``asked``, the Korean names of the question's own
    names, does not hold ("China's Foreign Ministry": 중국 외교부 is asked). Any other name
    is no body's, so never another country's body."""
    return korean in institutions.korean_bodies() and not _korean_body_in(korean, text, asked)


def _korean_body_in(body: str, text: str, asked: Iterable[str]) -> bool:
    countries = korean_countries()
    for match in re.finditer(re.escape(body), text):
        before = text[: match.start()]
        word = before.split()[-1] if before[-1:].isspace() and before.strip() else ""
        word = word.removesuffix("의") if len(word) > 2 else word  # 일본의 기상청
        country = _COUNTRY_SYLLABLES.get(word, word)
        if country in _KOREA or country in asked or country not in countries:
            return True
    return False


def months(text: str) -> set[int]:
    """The months an English text names ("in November 2013" -> {11}; May only beside a
    number or after "in", "since" and the like, as the word is also a verb and a name)."""
    return {MONTHS[m.lower()] for m in _MONTH_NAME.findall(text)}


def hangul_names(tokens: list[Token]) -> list[str]:
    """Proper nouns and the noun runs that hold one ("카카오" + "브레인"), as written."""
    out: list[str] = []
    run: list[Token] = []
    for t in [*tokens, Token("", "", -1, -1)]:
        if t.tag in _NOUNS and run and run[-1].end == t.start:
            run.append(t)
            continue
        for name in (
            "".join(x.form for x in run[a:b])
            for a in range(len(run))
            for b in range(a + 1, len(run) + 1)
            if any(x.tag == "NNP" for x in run[a:b])
        ):
            out.append(name)
            out.extend(_stems(name))
        run = [t] if t.tag in _NOUNS else []
    return list(dict.fromkeys(out))


class Spellings:
    """How a corpus spells English names in Hangul: the Hangul words of two syllables or
    more of its BM25 vocabulary (`rag.bm25.Lexical.spellings`), by phonetic key. An English
    question over Korean articles shares no word with them but its names, which the dense
    model reads poorly when romanised: "Lee Gwang-jae" is the BM25 term 이광재, "Minbyun"
    민변. Built once per opened index, in one pass over the vocabulary (0.02 s for 15,000
    words)."""

    def __init__(self, vocabulary: Iterable[str]) -> None:
        words = sorted({w for w in vocabulary if _HANGUL_WORD.fullmatch(w)})
        # Each word as written, and without a suffix of its kind (연평도 is Yeonpyeong,
        # 부산시 Busan; as `hangul_names` reads them), the stem at least two syllables long.
        pairs = [(w, w) for w in words] + [(w, stem) for w in words for stem in _stems(w)]
        self.words = [w for w, _ in pairs]
        self.forms = [form for _, form in pairs]
        self.keys = _phonetic_batch(self.forms)

    def of(self, name: str, known: Callable[[str], int]) -> str:
        """The word the corpus spells ``name`` with: of the words whose key is as close as
        `name_similarity` accepts and that ``known`` counts in some chunk, the one whose
        romanisation is closest letter by letter ("" if none). Letter by letter first, the
        key second: 류경수 and 이광재 both have the key of "Lee Gwang-jae" (vowels merged)."""
        from rapidfuzz import fuzz, process
        from rapidfuzz.distance import Levenshtein

        key = phonetic(_spoken(name))
        if len(key) < MIN_SPELT_KEY:
            return ""
        close = process.extract(
            key,
            self.keys,
            scorer=Levenshtein.normalized_similarity,
            score_cutoff=MIN_NAME_SIMILARITY,
            limit=None,
        )
        letters = re.sub(r"[^a-z]", "", name.lower())
        ranked = sorted(
            (
                (
                    max(
                        fuzz.ratio(letters, spelt)
                        for spelt in _as_english_writes(romanize(self.forms[i]).lower())
                    ),
                    score,
                    self.forms[i] == self.words[i],  # 부산 before 부산항 for "Busan"
                    self.words[i],
                )
                for _, score, i in close
            ),
            reverse=True,
        )
        return next((word for *_, word in ranked if known(word)), "")


def spelt_names(
    question: str, spellings: Spellings, known: Callable[[str], int]
) -> list[tuple[list[str], str]]:
    """For each English name of ``question`` (`latin_names`), its words as search terms
    ("lee", "gwang", "jae") and the Hangul word the corpus spells it with (이광재); a name no
    word spells whole is looked up word by word, as Kiwi cuts a compound name ("Kakao
    Mobility": 카카오, 모빌리티). On English queries naming a Korean person of the Wikinews
    articles (benchmarks/bench_english_names.py) the whole name, and its words only without
    it, took an article naming them to first place for 0.53 of the tuning split's queries;
    the whole name and each of its words for 0.44."""
    out: list[tuple[list[str], str]] = []

    def spelt(name: str) -> list[str]:
        # A place, people, language or public body is written as Korean translates it
        # (Japan: 일본), and not spelt by sound at all (재판) when the corpus does not hold
        # that word; a body's name Kiwi cuts (공정거래위원회: 공정, 거래, 위원회) by its words.
        if translated := korean_names(name):
            counts = {k: known(k) for k in translated}  # each term's column read once
            best = max(counts, key=counts.__getitem__)
            if counts[best] or translated[0] not in institutions.korean_bodies():
                return [best] if counts[best] else []
            return [m for m in morphemes(translated[0]) if known(m)]
        return [word] if (word := spellings.of(name, known)) else []

    for name in latin_names(question):
        words = [w.lower() for w in re.split(r"[\s\-‐]+", name) if w]
        if whole := spelt(name):
            out.extend((words, word) for word in whole)
        elif len(words) > 1 and not korean_names(name):
            out.extend(([w], word) for w in words for word in spelt(w))
    return out


def _phonetic_batch(words: list[str]) -> list[str]:
    """`phonetic` of `romanize` of each word, in one pass over them all (one word a line)."""
    text = re.sub(r"[^a-z\n]", "", romanize("\n".join(words)).lower())
    for pattern, replacement in _SOUNDS:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    return text.split("\n") if words else []


def _stems(name: str) -> list[str]:
    """``name`` without a suffix of its kind (누리호 = Nuri, 부산시 = Busan), the name left at
    least two syllables long."""
    return [
        name.removesuffix(s) for s in _KIND_SUFFIXES if len(name) > len(s) + 1 and name.endswith(s)
    ]


def name_similarity(latin: str, hangul: str) -> float:
    """1 - edit distance / length of the longer phonetic key (edit distance, not difflib's
    ratio, because a ratio forgives a missing word: Kakao Bank vs 카카오페이 is 0.86)."""
    from rapidfuzz.distance import Levenshtein  # imported on use: 6 ms of a cold `rag search`

    a, b = phonetic(_spoken(latin)), phonetic(romanize(hangul))
    if min(len(a), len(b)) < 4:  # two or three letters are too few to be similar
        return float(a == b)
    return Levenshtein.normalized_similarity(a, b)


def same_start(latin: str, hangul: str) -> bool:
    """Whether the names open alike (a look-alike does: Kakao Brain / 카카오엔터프라이즈),
    the Hangul one not being the English one and more: 삼성전자 is Samsung's, as
    카카오엔터프라이즈 is 카카오's to a Korean question (`rag.lookalike`); "When did Samsung
    chairman Lee Kun-hee die?" was refused beside "삼성전자의 이건희 회장이 … 별세했다". The
    other way round is a look-alike still: 카카오페이 (kakapa) for Kakao Bank (kakapank)."""
    a, b = phonetic(_spoken(latin)), phonetic(romanize(hangul))
    return a[:3] == b[:3] and not b.startswith(a)


def romanize(text: str) -> str:
    from anyascii import anyascii  # Revised Romanization per syllable, no sound changes

    return anyascii(text)


_SOUNDS = (
    (r"eu", ""),  # the vowel Korean inserts in loanwords (브레인 = beu-re-in for "brain")
    (r"c(?=[eiy])", "s"),  # English c: Cedar, but Coupang
    (r"c(?!h)", "k"),
    (r"ph|f|v", "p"),
    (r"ch|sh|j|z|s|x", "J"),
    (r"g|q|ck", "k"),
    (r"b", "p"),
    (r"d", "t"),
    (r"r(?=[^aeiouyw]|$)", ""),  # English r after a vowel is silent: Park = 박
    (r"r", "l"),
    (r"[aeiouyw]+", "a"),
    (r"(.)\1+", r"\1"),  # doubled letters: Flitto / 플리토 (peul-li-to)
)


def _spoken(english: str) -> str:
    """An English name as Korean writes its sounds, where its letters mislead: th is ㅅ
    (Elizabeth = 엘리자베스, Smith = 스미스). Not applied to romanised Hangul, where t and h
    meet across syllables (밭히 = bathi)."""
    return re.sub(r"th", "s", english, flags=re.I)


def phonetic(text: str) -> str:
    """A coarse key on which a romanised Hangul name and its English spelling agree:
    Lee Kyung-jin / 이경진 -> lakankJan / akankJan, Kakao Brain / 카카오브레인 -> kakaplan."""
    key = re.sub(r"[^a-z]", "", text.lower())  # the replacement symbols below are capitals
    for pattern, replacement in _SOUNDS:
        key = re.sub(pattern, replacement, key)
    return key


# A misspelt Korean name (헤리슨 for 해리슨, 바르세롤나 for 바르셀로나) is as long as the
# right one and differs by a letter or two (jamo), MISSPELT_JAMO[syllables] at most; a name
# one syllable longer or shorter is more often another name (카카오페이 / 카카오페이지).
MIN_MISSPELT_SYLLABLES = 3
MISSPELT_JAMO = {3: 1, 4: 1}  # and 2 from 5 syllables on


def misspelt_in(name: str, text: str) -> str:
    """A name in ``text`` (spaces removed) as long as Hangul ``name`` and a letter or two
    (jamo) off it -- the right spelling of a name the user misspelt -- or "" if none."""
    from rapidfuzz.distance import Levenshtein

    if len(name) < MIN_MISSPELT_SYLLABLES or not all("가" <= c <= "힣" for c in name):
        return ""
    limit = MISSPELT_JAMO.get(len(name), 2)
    wanted = _jamo(name)
    for i in range(len(text) - len(name) + 1):
        part = text[i : i + len(name)]
        if part == name or (part[0] != name[0] and part[-1] != name[-1]):
            continue
        hangul = all("가" <= c <= "힣" for c in part)
        if hangul and Levenshtein.distance(_jamo(part), wanted) <= limit:
            return part
    return ""


def _jamo(text: str) -> str:
    """Hangul syllables as their letters (initial, vowel, final) by Unicode arithmetic."""
    out = []
    for c in text:
        code = ord(c) - 0xAC00
        out.append(chr(0x1100 + code // 588) + chr(0x1161 + code % 588 // 28))
        if code % 28:
            out.append(chr(0x11A7 + code % 28))
    return "".join(out)


def _as_english_writes(romanised: str) -> tuple[str, str]:
    """A romanised Hangul word as Revised Romanization writes it, and with eo and eu as o
    and u, as English news often writes them: 김정은 (gimjeongeun) is Kim Jong-un, where 이건희
    (igeonhui) is Lee Kun-hee, with eo as u: neither way alone fits both."""
    return romanised, romanised.replace("eo", "o").replace("eu", "u")
