"""What a sentence asserts, for the support check: names, quantities, negations, the
direction of a change, ordered "from A to B" pairs and the subject.

Everything is read off one Kiwi analysis of the sentence (English words come out of Kiwi as
``SL`` tokens); `rag.support` compares a claim's features with those of the source sentences.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from . import institutions
from .korean import english_stopwords, tagged
from .names import foreign
from .places import korean_names
from .quantities import _MONTHS, Quantity, quantities

# Negation: 않다/못하다 (auxiliaries), 못/안 (adverbs), 없다, 아니다.
_KO_NEGATION = {("않", "VX"), ("못하", "VX"), ("못", "MAG"), ("안", "MAG"), ("없", "VA")}
_KO_NEGATION |= {("아니", "VCN"), ("말", "VX")}
_EN_NEGATION = re.compile(
    r"\b(?:not|no|never|none|neither|nor|cannot|without)\b|n't\b", re.IGNORECASE
)
# Direction of a change. Korean by verb/noun lemma, English by word.
# Not 오르다/내리다: rain falls (비가 내리다) and conclusions are drawn (결론을 내리다).
KO_UP = {"증가", "늘", "늘어나", "늘리", "상승", "커지", "확대", "급증", "성장", "증대", "높아지"}
KO_UP |= {"급상승", "급등", "폭등", "상승세", "증가세", "오름세"}
KO_DOWN = {"감소", "줄", "줄어들", "줄이", "하락", "떨어지", "축소", "급감", "작아지", "낮아지"}
KO_DOWN |= {"급하락", "급락", "폭락", "하락세", "감소세", "내림세"}
_EN_UP = re.compile(
    r"\b(?:increas\w*|gr[eo]w\w*|rose|rise[sn]?|rising|climb\w*|jump\w*|expand\w*|up)\b",
    re.IGNORECASE,
)
_EN_DOWN = re.compile(
    r"\b(?:decreas\w*|f[ae]ll\w*|dropp?\w*|declin\w*|shr[aiu]nk\w*|reduc\w*|down|cut)\b",
    re.IGNORECASE,
)
# Particles that mark a subject or topic, and the tags a subject's noun phrase is made of.
_SUBJECT_MARKS = {("은", "JX"), ("는", "JX"), ("이", "JKS"), ("가", "JKS"), ("께서", "JKS")}
_NOUN_PHRASE = {"NNP", "NNG", "NNB", "NR", "NP", "SL", "SN", "SH", "XPN", "XSN", "JKG", "MM"}
_NOUN_PHRASE |= {"SSO", "SSC", "SW"}
_NOUNS = {"NNP", "NNG", "SL", "SN", "SH", "XSN"}
# A subject that points back ("이 신임 대표", "그는", "this company") names nobody itself.
_ANAPHORA = re.compile(
    r"^(?:이|그|해당|동|同|저)\s|^(?:그|그녀|이들|그들)$|^(?:he|she|it|they|this|the)\b"
)


@dataclass
class Clause:
    """A clause of a sentence: its content words, its predicate and its negations."""

    terms: set[str]
    predicate: str | None
    negations: int
    change: set[int]


@dataclass
class Analysis:
    """The features of one sentence (a claim or a source sentence)."""

    text: str
    terms: set[str]
    entities: list[str]
    quantities: list[Quantity]
    negations: int
    # Per clause: its content terms, its predicate (last verb, adjective or predicative
    # noun) and its negation count. A clause ends at a connective ending or a comma;
    # "하지 않" stays one clause.
    clauses: list[Clause] = field(default_factory=list)
    change: set[int] = field(default_factory=set)  # +1 increase, -1 decrease
    subjects: list[str] = field(default_factory=list)  # subject/topic noun phrases
    latin: bool = False  # an English sentence (Hangul is under 30 % of its letters)


def analyze(texts: Sequence[str]) -> list[Analysis]:
    """`Analysis` of each text (one Kiwi batch, for the texts not analyzed before)."""
    from .korean import _content
    from .support import QUESTION_WORDS, language

    analyzed = tagged(texts)  # the refusal gate and the answerer analyzed most already
    out = []
    for text, tokens in zip(texts, analyzed, strict=True):
        latin = language(text) == "en"
        terms = set(_content(tokens)) - QUESTION_WORDS
        out.append(
            Analysis(
                text=text,
                terms=terms,
                entities=_entities(text, tokens, latin),
                quantities=quantities(text),
                negations=_negations(text, tokens, latin),
                clauses=_clauses(tokens),
                change=_change(text, tokens, latin),
                subjects=_subjects(text, tokens, latin),
                latin=latin,
            )
        )
    return out


def _negations(text: str, tokens: Sequence, latin: bool) -> int:
    if latin:
        return len(_EN_NEGATION.findall(text))
    return sum((t.form, t.tag.split("-")[0]) in _KO_NEGATION for t in tokens)


def _clauses(tokens: Sequence) -> list[Clause]:
    from .korean import _content

    clauses: list[list] = [[]]
    for i, t in enumerate(tokens):
        clauses[-1].append(t)
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        ends = t.tag in {"EC", "SP"} or (t.tag == "SL" and t.form.lower() in {"but", "while"})
        if ends and not (nxt is not None and nxt.tag.startswith("VX")):
            clauses.append([])
    merged: list[list] = []
    for c in clauses:
        # "조사하진 않았으나" splits after "조사하지": a piece without content words (the
        # negation, an ending) belongs to the clause before it.
        if merged and not _content(c):
            merged[-1].extend(c)
        elif c:
            merged.append(c)
    out = []
    for c in merged:
        predicate = None
        for j, t in enumerate(c):
            tag = t.tag.split("-")[0]
            if tag in {"VV", "VA", "XR"} or (
                tag == "NNG" and j + 1 < len(c) and c[j + 1].tag.startswith(("XSV", "XSA"))
            ):
                predicate = t.form
        negations = sum((t.form, t.tag.split("-")[0]) in _KO_NEGATION for t in c)
        forms = {t.form for t in c}
        change = {d for d, stems in ((1, KO_UP), (-1, KO_DOWN)) if forms & stems}
        out.append(Clause(set(_content(c)), predicate, negations, change))
    return out


def _change(text: str, tokens: Sequence, latin: bool) -> set[int]:
    if latin:
        up, down = bool(_EN_UP.search(text)), bool(_EN_DOWN.search(text))
    else:
        lemmas = {t.form for t in tokens if t.tag.startswith(("VV", "VA", "NNG"))}
        up, down = bool(lemmas & KO_UP), bool(lemmas & KO_DOWN)
    return {d for d, found in ((1, up), (-1, down)) if found}


def _entities(text: str, tokens: Sequence, latin: bool) -> list[str]:
    """Names: runs of nouns holding a proper noun ("카카오" + "브레인" = "카카오브레인"),
    capitalized Latin words and acronyms ("Kakao Enterprise", "AI")."""
    names: list[str] = []
    run: list = []

    def flush() -> None:
        if not run or all(t.tag == "SL" for t in run):
            run.clear()
            return
        word = text[run[0].start : run[-1].start + run[-1].len]
        if len(word) >= 2 and (any(t.tag == "NNP" for t in run) or _is_proper(word)):
            names.append(word)
        run.clear()

    for t in tokens:
        glued = run and t.start == run[-1].start + run[-1].len
        if t.tag in {"NNP", "NNG", "XSN", "SH"} and (glued or not run):
            run.append(t)
        elif t.tag in {"NNP", "NNG", "XSN", "SH"}:
            flush()
            run.append(t)
        else:
            flush()
    flush()
    names.extend(_latin_names(text, first_word_counts=not latin))
    return list(dict.fromkeys(names))


@functools.lru_cache(maxsize=65536)
def _is_proper(word: str) -> bool:
    """Whether Kiwi reads ``word`` alone as a proper noun: it tags a name by context, so
    "카카오엔터프라이즈의 외형" may come out as a common noun at a sentence's start."""
    if len(word) < 3 or not re.fullmatch(r"[가-힣]+", word):
        return False
    return any(t.tag == "NNP" for t in tagged([word])[0])


# A name ends at a possessive: "Kakao's AI Lab" is Kakao and AI Lab.
_LATIN_NAME = re.compile(
    r"(?<![A-Za-z])[A-Z][A-Za-z0-9&.-]*(?:\s+(?:[A-Z][A-Za-z0-9&.-]*|of|de|von))*"
)


# Acronyms for titles, not names: Korean writes 대표이사, not CEO.
# Months and weekdays are dates, compared as quantities.
_GENERIC = {"CEO", "CFO", "CTO", "COO", "VP", "Mr", "Ms", "Mrs", "Dr"}
_GENERIC |= {m.capitalize() for m in _MONTHS.split()}
_GENERIC |= {d + "day" for d in "Mon Tues Wednes Thurs Fri Satur Sun".split()}


def _latin_names(text: str, first_word_counts: bool) -> list[str]:
    stop = english_stopwords()
    # A public body's name is one name, "and" and commas in it (`rag.institutions`).
    out, text = institutions.cut(text)
    for m in _LATIN_NAME.finditer(text):
        words = [w for w in re.split(r"\s+", re.sub(r"['’]s$", "", m.group(0))) if w]
        while words and words[-1].lower() in stop | {"of", "de", "von"}:
            words.pop()
        while words and words[0].lower() in stop:
            words.pop(0)
        if not words:
            continue
        starts_sentence = not text[: m.start()].strip()
        if starts_sentence and not first_word_counts and len(words) == 1 and words[0].istitle():
            # "Revenue grew ...": a capital at the start of an English sentence is no sign
            # of a name; a lone capitalized word there is checked only if it is an acronym.
            continue
        name = " ".join(words).rstrip(".-")
        if name not in _GENERIC:
            out.append(name)
    return out


def _subjects(text: str, tokens: Sequence, latin: bool) -> list[str]:
    """Noun phrases marked as subject or topic (은/는/이/가), or an English sentence's
    leading noun phrase."""
    if latin:
        m = re.match(r"\s*((?:[A-Z][A-Za-z0-9&.-]*(?:['’]s)?\s*)+)", text)
        return [re.sub(r"['’]s\b", "", m.group(1)).strip()] if m else []
    subjects = []
    for i, t in enumerate(tokens):
        if (t.form, t.tag) not in _SUBJECT_MARKS or i == 0:
            continue
        j = i
        while j > 0 and tokens[j - 1].tag.split("-")[0] in _NOUN_PHRASE:
            j -= 1
            if tokens[j].tag == "SSC":  # "바레토(여, 65세)가": the aside belongs to the name
                while j > 0 and tokens[j].tag != "SSO":
                    j -= 1
        if j < i and any(tok.tag in _NOUNS for tok in tokens[j:i]):
            subjects.append(text[tokens[j].start : tokens[i - 1].start + tokens[i - 1].len])
    return subjects


def is_anaphor(phrase: str) -> bool:
    """Whether a subject phrase only points back ("이 신임 대표이사 내정자", "he")."""
    words = phrase.strip().lower().split()
    if words and words[0] in {"이날", "이번", "당시", "현재", "한편"}:  # time words first
        words = words[1:]
    return bool(_ANAPHORA.match(" ".join(words)))


# ---------------------------------------------------------------- names across scripts

# Korean surnames as English writes them ("Lee Kyung-jin" = 이경진). Romanization of
# surnames follows no rule, so the common ones are listed.
_SURNAMES = {
    "이": "lee yi rhee i", "김": "kim gim", "박": "park pak bak", "최": "choi choe",
    "정": "jung chung jeong", "강": "kang gang", "조": "cho jo", "윤": "yoon yun",
    "장": "jang chang", "임": "lim im", "한": "han", "오": "oh o", "서": "seo suh",
    "신": "shin sin", "권": "kwon gwon", "황": "hwang", "안": "ahn an", "송": "song",
    "유": "yoo yu ryu", "홍": "hong", "문": "moon mun", "손": "son sohn", "배": "bae",
    "백": "baek paik", "노": "roh noh", "전": "jeon chun", "고": "ko go", "양": "yang",
}  # fmt: skip
MIN_NAME_SIMILARITY = 0.8


@functools.lru_cache(maxsize=65536)
def skeleton(word: str, hangul: bool) -> str:
    """A consonant skeleton for comparing a romanized Hangul name with an English one.

    Korean loanwords add "eu" after consonants (브레인 = beurein for "brain") and drop an
    "r" after a vowel (엔터 = enteo for "enter"); voiced and voiceless stops, r and l, and
    the sibilants are one letter in Hangul. So: romanize (anyascii), drop "eu" on the Korean
    side and post-vocalic "r" on the English side, merge those letters, drop the vowels.
    """
    from anyascii import anyascii

    s = anyascii(word).lower() if hangul else word.lower()
    s = re.sub(r"[^a-z]", "", s)
    if hangul:
        s = s.replace("eu", "")
    else:
        s = re.sub(r"ph", "f", s)
        s = re.sub(r"th", "t", s)
        s = re.sub(r"ck", "k", s)
        s = re.sub(r"c(?=[eiy])", "s", s)
        s = s.replace("x", "ks").replace("q", "k").replace("c", "k")
        s = re.sub(r"(?<=[aeiou])r(?![aeiouy])", "", s)
    s = s.replace("ng", "n").replace("ch", "s").replace("sh", "s")
    s = re.sub(r"(.)\1+", r"\1", s)
    s = s.translate(str.maketrans("bgdlfvzjwh", "pktrppss__")).replace("_", "")
    # Vowels differ across the two spellings, but where they are still tells names apart.
    return re.sub(r"[aeiouy]+", "V", s).rstrip("V")


def _similar(a: str, b: str) -> bool:
    if len(a) <= 4 or len(b) <= 4:  # short names: "Kakao" is 카카오, not 광고
        return a == b and len(a) >= 2
    return SequenceMatcher(None, a, b).ratio() >= MIN_NAME_SIMILARITY


def latin_matches_hangul(name: str, hangul: str) -> bool:
    """Whether the English ``name`` transliterates the Hangul ``hangul`` (spaces ignored).

    "Kakao Brain" ~ 카카오브레인, "Flitto" ~ 플리토, "Lee Kyung-jin" ~ 이경진.
    """
    words = [w for w in re.split(r"[\s-]+", name) if w]
    compact = hangul.replace(" ", "")
    spellings = {s for spelled in _SURNAMES.values() for s in spelled.split()}
    if len(words) < 2 or not {words[0].lower(), words[-1].lower()} & spellings:
        return _similar(skeleton("".join(words), False), skeleton(compact, True))
    # A Korean person: surname (either end, spelled as usual) and given name, romanized
    # like Hangul ("Geun-hye"), against a name of 2-4 syllables.
    if not (2 <= len(compact) <= 4 and compact[0] in _SURNAMES):
        return False
    given = skeleton(compact[1:], True)
    for surname, rest in ((words[0], words[1:]), (words[-1], words[:-1])):
        # Given names are short: their consonants must agree ("Kyung-jin" = 경진).
        spelled = skeleton("".join(rest), True).replace("V", "")
        if surname.lower() in _SURNAMES[compact[0]].split() and spelled == given.replace("V", ""):
            return True
    return False


@functools.lru_cache(maxsize=4096)
def hangul_candidates(text: str) -> tuple[str, ...]:
    """Hangul spans a Latin name may transliterate: each word without its particles, and
    runs of two or three words ("버락 오바마")."""
    words = [re.sub(r"[^가-힣]+.*$", "", w) for w in re.findall(r"[가-힣][가-힣\w]*", text)]
    words = [strip_particle(w) for w in words if w]
    spans = list(words)
    for n in (2, 3):
        spans += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return tuple(s for s in spans if len(s) >= 2)


_PARTICLE = re.compile(r"(?:은|는|이|가|을|를|의|에|에서|으로|로|와|과|도|만|께서|이다|였다|다)$")


def strip_particle(word: str) -> str:
    """``word`` without a particle or copula ending ("카카오는" -> "카카오")."""
    stripped = _PARTICLE.sub("", word)
    return stripped if len(stripped) >= 2 else word


_NAME_PARTICLES = set("이가은는을를의와과도")


@functools.lru_cache(maxsize=65536)
def find_name(name: str, text: str) -> str | None:
    """Where ``name`` occurs in ``text``: as written (case and spaces ignored) or, for a
    Latin name, as a Hangul transliteration. Returns the matching span or ``None``."""
    squeezed = re.sub(r"\s+", "", text).lower()
    compact = re.sub(r"\s+", "", name).lower()
    if compact in squeezed or compact in re.sub(r"\([^()]*\)", "", squeezed):
        return name  # as written, or across an aside ("한빛 (구 영광)원자력발전소")
    if len(compact) > 2 and compact[-1] in _NAME_PARTICLES and compact[:-1] in squeezed:
        return name[:-1]  # "덩신밍이" where the source has "덩신밍(33)이"
    if not re.search(r"[A-Za-z]", name) or re.search(r"[가-힣]", name) or name.isupper():
        return None  # an acronym is written as it is, not transliterated
    # A country, people, city or public body is written as Korean translates it (Japan:
    # 일본; the Fair Trade Commission: 공정거래위원회 or 공정위), a whole word of the text or
    # inside one from three letters on (인도 is not in 인도네시아), and a body not another
    # country's (일본 기상청 is no Korea Meteorological Administration).
    words = set(hangul_candidates(text))
    for korean in korean_names(name):
        written = korean in words or (len(korean) >= 3 and korean.replace(" ", "") in squeezed)
        if written and not foreign(korean, text):
            return korean
    for c in hangul_candidates(text):
        if latin_matches_hangul(name, c):
            return c
    return None
