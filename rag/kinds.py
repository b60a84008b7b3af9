"""What kind of answer a question asks for, and whether a text holds one (Kiwi tags)."""

from __future__ import annotations

import itertools
import re

from .institutions import korean_bodies
from .korean import Token, tagged
from .names import latin_names
from .places import korean_places
from .support import language, numbers

# Time words with no digit; Kiwi has no time tag, so these few closed-class nouns stand in.
# Each places an event in time, given the article's date; 현재, 최근 and 당시 do not ("현재
# 개발 중" does not say when it comes out).
_TIME_WORDS = frozenset(
    "지난해 올해 작년 내년 어제 오늘 내일 이날 전날 다음날 오전 오후 새벽".split()
)
# An age or period a noun names ("계몽주의 시대", "조선 중기"): a date without digits.
_PERIODS = frozenset("시대 시기 무렵 초기 말기 중기".split())
_TIME_UNITS = frozenset("년 월 일 시 분 년대 세기 시대 주 초 말 분기 반기".split())
# The most common Korean surnames (Statistics Korea, 2015 census: these cover about 95% of
# people); a closed class, like the time words.
_SURNAMES = frozenset(
    "김이박최정강조윤장임한오서신권황안송전홍류유고문양손배백허남심노하곽성차주우구민진나지엄채원"
    "천방공현함변염여추도소석선설마길연위표명기반라왕금옥육인맹제모탁국어은편용예경봉사부"
)
# What news and encyclopaedias write right after a person's name ("트럼프 대통령", "시진핑
# 국가주석", "머스크 CEO", "김철수 씨"): a title or role, a closed class like the surnames. Not
# 시장 (mayor, also market: "중국 시장") nor 군 (also county, army).
TITLES = frozenset(
    "대통령 부통령 총리 국무총리 수상 총통 주석 국가주석 국왕 왕 여왕 황제 황후 왕비 왕자 공주 "
    "교황 추기경 주교 목사 신부 스님 장관 차관 의원 의장 부의장 위원장 위원 대표 대표이사 회장 "
    "부회장 사장 부사장 이사장 이사 전무 상무 총재 부총재 원장 총장 학장 교수 박사 연구원 감독 "
    "코치 선수 기자 특파원 앵커 작가 시인 화가 배우 가수 씨 여사 장군 원수 제독 대사 대변인 "
    "지사 도지사 구청장 군수 후보 후보자 당선자 당선인 변호사 판사 검사 검찰총장 실장 비서실장 "
    "국장 부장 단장 팀장 소장 청장 창업자 창업주 설립자 CEO 수반 당수 총독".split()
)
_PLACE_NOUNS = re.compile(
    r"(?:어느|어떤|무슨)\s*(?:도시|나라|국가|지역|장소|지점|대륙|섬|항구|마을|동네)"
)
_KINDS = (
    (
        "person",
        re.compile(
            r"누구|누가|\bwho(m|se)?\b|\bwhich (?:\w+ )?(?:player|person|man|woman|coach|"
            r"executive|official|minister|politician|candidate|singer|actor|actress)\b",
            re.I,
        ),
    ),
    ("amount", re.compile(r"얼마(?!나)|\bhow much\b", re.I)),
    # "What was Kakao Brain's revenue?": English asks for a sum by naming it.
    (
        "amount",
        re.compile(
            r"^\s*what\s+(?:is|was|are|were|will be)\b(?:(?!\b(?:cause|reason|effect|impact)).)*"
            r"\b(?:revenue|sales|turnover|profits?|loss(?:es)?|price|cost|budget|salary|income|"
            r"deficit|market (?:cap|value))\b",
            re.I,
        ),
    ),
    ("date", re.compile(r"언제|몇\s*년도|\bwhen\b|\bwhat (year|date|day|month)\b", re.I)),
    (
        "number",
        re.compile(
            r"몇|얼마나|\bhow (?:many|long|old|far|tall|high|deep)\b|"
            r"\bwhat (?:percentage|share|proportion|fraction)\b|"
            r"나이(?:는|가)\s*\??\s*$|\bwhat age\b",  # "숨진 나이는?": an age, a number
            re.I,
        ),
    ),
    ("place", re.compile(r"어디|\bwhere\b", re.I)),
    # "어느 도시에서 열렸나", "러시아군을 벗어났던 지점은?": a place, named by its kind.
    ("place", _PLACE_NOUNS),
)


# Native numerals Kiwi tags as determiners before a counter ("세 명", "두 곳").
_NATIVE_NUMERALS = frozenset(
    "한 두 세 네 다섯 여섯 일곱 여덟 아홉 열 스무 수십 수백 수천 수만".split()
)
# Other counters are paraphrased freely (몇 등급 / 5개, 몇 가지 / 4종, 몇 센티 / 35cm: KorQuAD),
# a head count is not: "how many people" needs a number of 명 (or 인).
_PEOPLE_COUNTERS = frozenset({"명", "인"})
_HOW_MANY_PEOPLE = re.compile(
    r"\bhow many (?:\w+ )?(?:people|persons|employees|workers|staff|members|students|"
    r"soldiers|victims|passengers|residents|players|patients|deaths|casualties|injured|"
    r"dead|children|users|visitors|voters)\b",
    re.I,
)


# A question that ends by naming a person's role ("…의 대표는?", "…의 감독은?") asks who
# holds it, without saying 누구; a closed class of role nouns.
_ROLE_QUESTION = re.compile(
    r"(?:대표|대표이사|최고경영자|사장|회장|부회장|의장|총재|위원장|장관|총리|대통령|감독|"
    r"작가|저자|작곡가|창업자|설립자|발명가|주인공|후임|전임)(?:은|는)\s*\?\s*$"
)


# Korean question words asking for no particular kind; one after every kind's question
# word is what the sentence asks ("몇 개 주에서 시행한 법을 뭐라고 하나?": a name, not a
# number), since a Korean sentence ends on what it asks.
_WHAT = re.compile(r"무엇|뭐|뭘|무슨|어떤|어떻게|어떠|왜")


def answer_kind(question: str) -> str:
    """What the question asks for: person, amount, date, number, place or other.

    An English question asks with its first question word: the later ones open a clause
    ("How many were on board *when* it crashed?" asks for a number, not a date). A Korean
    one asks with the last, when that one asks for no particular kind (`_WHAT`).
    """
    english = language(question) == "en"
    found = [
        (m.start() if english else rank, kind, m.end())
        for rank, (kind, pattern) in enumerate(_KINDS)
        for m in [pattern.search(question)]
        if m
    ]
    opening = _WH.search(question) if english else None
    if found and opening and min(found)[0] > opening.start():
        # "What did Korea University decide about the student who filmed …?": the first
        # question word asks for no kind; "who" opens a clause.
        return "other"
    if found and not english:
        last = max(end for *_, end in found)
        if any(m.start() >= last for m in _WHAT.finditer(question)):
            return "other"
    if found:
        kind = min(found)[1]
        return "other" if kind == "person" and asks_identity(question) else kind
    return "person" if _ROLE_QUESTION.search(question) else "other"


_END = Token("", "", 0, 0)  # what follows the last token
_WH = re.compile(r"\b(?:what|which|who|whom|whose|when|where|why|how)\b", re.I)


_WHO_IS = re.compile(r"^\s*who\s+(?:is|was)\s+(.+?)\s*\??\s*$", re.I)
# "What is Wikileaks?", "What kind of company is Kakao Mobility?"
_WHAT_IS = re.compile(
    r"^\s*what\s+(?:(?:kind|type|sort)\s+of\s+\w+\s+)?(?:is|was)\s+(?:the\s+)?(.+?)\s*\??\s*$",
    re.I,
)
_ACRONYM = re.compile(r"[A-Z]{2,}")


def asks_identity(question: str) -> str:
    """What a question names and asks who or what it is, or "": what it is, does or did
    answers it, not another name. A person ("이경진은 누구인가?", "Who is Lee Kyung-jin?") or
    anything else named ("카카오모빌리티는 어떤 회사야?", "위키리크스는 무엇인가?", "What kind
    of company is Kakao Mobility?")."""
    if language(question) == "en":
        asked = _WHO_IS.match(question) or _WHAT_IS.match(question)
        if asked and (latin_names(question) == [asked[1]] or _ACRONYM.fullmatch(asked[1])):
            return asked[1]
        return ""
    [tokens] = tagged([question])
    words = [t for t in tokens if t.tag[0] not in "JES" and t.tag != "VCP"]
    *name, last = words or [_END]
    if last.form == "누구":
        # 이경진, or a given and a family name (넬슨 만델라).
        named = 1 <= len(name) <= 2 and all(t.tag == "NNP" for t in name)
        if named and _is_person(name, 0):
            return question[name[0].start : name[-1].end]
        return ""
    return _named_thing(question, tokens)


def _named_thing(question: str, tokens: list[Token]) -> str:
    """X of "X는 무엇인가?", "X는 뭐야?" or "X는 어떤 회사야?": a run of up to three nouns,
    one of them a proper noun, as the question's topic or subject; "" for any other shape
    ("청나라의 역법은 무엇인가?" asks about the calendar, not about 청나라)."""
    words = [t for t in tokens if t.tag[0] not in "ES" and t.tag != "VCP"]
    if words and words[-1].form in ("무엇", "뭐"):
        rest = words[:-1]
    elif len(words) >= 2 and words[-2].form in ("어떤", "무슨") and words[-1].tag == "NNG":
        rest = words[:-2]
    else:
        return ""
    if len(rest) < 2 or rest[-1].form not in ("은", "는", "이", "가", "란"):
        return ""
    name = rest[:-1]
    nouns = {"NNP", "NNG", "SL"}
    if len(name) > 3 or any(t.tag not in nouns for t in name) or all(t.tag != "NNP" for t in name):
        return ""
    return question[name[0].start : name[-1].end]


# Who wrote the article: its byline answers, not a person its text names. "쓴 기자",
# "기자는 누구", "기사 … 누가 썼나", "Who wrote the article", "which reporter"; not
# 기자회견, 기자간담회 or 연기자, nor "who wrote the letter".
_AUTHOR = re.compile(
    r"(?:쓴|작성한|취재한)\s*기자|(?<![가-힣])기자(?:는|가)?\s*누구|(?<![가-힣])기자(?:의)?\s*이름|"
    r"기사.{0,30}(?:누가\s*(?:썼|쓴|작성)|작성자|필자)|(?:누가\s*(?:썼|쓴|작성)|작성자|필자).{0,30}기사|"
    r"\b(?:which|what)\s+reporters?\b|\breporters?\s+who\s+(?:wrote|covered)\b|\bbyline\b|"
    r"\b(?:who\s+(?:wrote|reported|authored)|written\s+by|author(?:'s\s+name)?\s+of)\b.{0,40}"
    r"\b(?:article|story|piece|report)\b",
    re.I,
)


def asks_author(question: str) -> bool:
    """Whether ``question`` asks who wrote the article (its byline): not when, or how many."""
    return answer_kind(question) in ("person", "other") and bool(_AUTHOR.search(question))


def counts_people(question: str, tokens: list[Token]) -> bool:
    """Whether a "how many" question counts people ("몇 명", "how many employees");
    ``tokens`` are the question's (`rag.korean.tagged_batch`)."""
    if any(
        t.form == "몇" and nxt.form in _PEOPLE_COUNTERS for t, nxt in itertools.pairwise(tokens)
    ):
        return True
    return bool(_HOW_MANY_PEOPLE.search(question))


# What the number asked for measures, where the question says so: a share ("몇 퍼센트",
# "득표율은 얼마", "what percentage") is written with % or 퍼센트, a sum of money ("과징금은
# 얼마", "비용은 얼마", "What was the price") with a currency. A count is not a share, and a
# count of records (1억건) or a launch's number (3차) is not a sum. 환율 (an exchange rate)
# is a sum per unit, not a share.
_SHARE_ASKED = re.compile(
    r"몇\s*(?:퍼센트|%|프로(?![가-힣]))|(?<!환)[율률](?:은|는|이|가)?\s*(?:\S+\s+)?(?:몇|얼마)|비중|"
    r"\b(?:what|which) (?:percentage|share|proportion|fraction)\b|\bhow many percent|"
    r"\bpercent(?:age)?\b",
    re.I,
)
_MONEY_ASKED = re.compile(
    r"비용|가격|값|금액|과징금|벌금|상금|예산|매출|이익|손실|적자|흑자|수익|연봉|급여|임금|월급|"
    r"투자금|투자액|배상금|배상액|보상금|피해액|요금|시가총액|몸값|이적료|자본금|부채|세금|기부금|"
    r"사업비|공사비|판매가|입찰가|낙찰가|보증금|수출액|수입액|거래액|출연료|수수료|"
    r"\b(?:cost|costs|price|revenue|sales|profits?|loss(?:es)?|budget|salary|fine|fees?|"
    r"income|deficit|damages|paid|pay|spent|spend|earned|worth|dollars?)\b",
    re.I,
)
# "By how much did the shares rise?", "얼마 올랐나": a change, which a share (10.61%) gives as
# well as a sum; not "lose" (what a company lost is a sum).
_CHANGE_ASKED = re.compile(
    r"\bhow much\b[^?]*\b(?:ris(?:e|es|en)|rose|f[ae]ll(?:s|en)?|increas|decreas|gr[eo]w|"
    r"drop|climb|jump|declin|gain|shr[ai]nk|plung|soar|slid|sank|sink)|"
    r"얼마\s*(?:나\s*)?(?:올랐|오른|상승|늘었|늘어난|증가|내렸|내린|하락|줄었|줄어든|감소)",
    re.I,
)
_HOW_LONG = re.compile(
    r"얼마나\s*(?:오래|걸)|기간|얼마\s*만에|시간(?:은|는|이|가)?\s*(?:\S+\s+)?얼마|"
    r"\bhow long\b|\bhow many (?:years|months|weeks|days|hours|minutes|seconds|decades|"
    r"centuries)\b",
    re.I,
)
# An age ("몇 살", "나이는?", "how old") is written N살 or N세, or after a name in brackets,
# as news gives ages: 김영삼(89), 바레토(여, 65세). Not 몇 세기 or 몇 세대.
_AGE_ASKED = re.compile(r"몇\s*(?:살|세(?![기대]))|나이|\bhow old\b|\bwhat age\b", re.I)
_AGE_UNITS = frozenset({"살", "세"})
_SHARE_UNITS = frozenset({"%", "퍼센트", "프로", "%p", "퍼센트포인트", "percent"})
# Primes that Kiwi tags as symbols (SW) like % or ℃, and web text uses as quote marks.
_QUOTE_MARKS = frozenset("′″‴")
_CURRENCIES = frozenset(
    "원 달러 엔 유로 위안 파운드 루블 페소 프랑 불 원화 달러화 엔화 유로화 위안화 마르크 루피 "
    "won dollars dollar usd krw eur yen".split()
)
_CURRENCY_SIGNS = frozenset("$₩€£¥")
# Counters that number a thing in a series (3차 발사, 제61회, 2위) rather than measure it.
_SERIAL_COUNTERS = frozenset({"차", "번째", "위", "회", "호", "등", "회차", "기"})
# Calendar parts: a number before these dates something; it counts nothing.
_CALENDAR_UNITS = frozenset({"년", "월", "일", "년대", "세기"})


# A score asked for ("몇 대 몇으로 이겼어?") is two numbers set against each other: 4대1,
# 4 대 1, 4:1, 4-1, 4승 1패 (in Kiwi's tokens, joined by spaces), not a date (2016-03-09).
_SCORE_ASKED = re.compile(r"몇\s*대\s*몇")
_SCORE_WRITTEN = re.compile(
    r"\d+ 대 \d+|(?<![\d:–-])\d{1,3} ?[:–-] ?\d{1,3}(?![\d:–-])|\d+ 승 (?:\d+ 무 )?\d+ 패"
)


def asked_measure(question: str, tokens: list[Token]) -> str:
    """What the asked number measures: ``people`` (`counts_people`), ``share``, ``money``,
    ``change`` (how much something rose or fell: a sum or a share),
    ``duration`` (a time a number of 년/days measures: "몇 년", "how long"), ``score`` (two
    numbers against each other: "몇 대 몇"), or "" for any number. ``tokens`` are the
    question's; an English question's names say nothing of it (Kakao Pay's "Pay")."""
    kind = answer_kind(question)
    if kind not in ("number", "amount"):
        return ""
    if language(question) == "en":
        for name in latin_names(question):
            question = question.replace(name, " ")
    if _SCORE_ASKED.search(question):
        return "score"
    if kind == "number" and _AGE_ASKED.search(question):
        return "age"
    if kind == "number" and counts_people(question, tokens):
        return "people"
    if _SHARE_ASKED.search(question):
        return "share"
    if kind == "amount" and _MONEY_ASKED.search(question):
        return "money"
    if kind == "amount" and _CHANGE_ASKED.search(question):
        return "change"
    if _HOW_LONG.search(question) or asked_counter(tokens) in _TIME_UNITS:
        return "duration"
    return ""


def asked_counter(tokens: list[Token]) -> str:
    """The counter a "몇" question names (개 in "몇 개", 층 in "몇 층이었나"), or ""."""
    for t, nxt in itertools.pairwise(tokens):
        if t.form == "몇" and nxt.tag in ("NNB", "NNG", "SW"):
            return nxt.form
    return ""


def holds_counter(tokens: list[Token], counter: str) -> bool:
    """Whether ``tokens`` hold a number followed by ``counter`` ("7개", "세 개", "1만여 개")."""
    for i, t in enumerate(tokens):
        if t.tag in ("SN", "NR") or (t.tag == "MM" and t.form in _NATIVE_NUMERALS):
            rest = [x.form for x in tokens[i + 1 : i + 4] if x.tag not in ("XSN", "NR")]
            if rest and rest[0] == counter:
                return True
    return False


def holds_kind(kind: str, tokens: list[Token], question: str, measure: str = "") -> bool:
    """Whether ``tokens`` (`rag.korean.tagged_batch`) hold an answer of ``kind`` (see
    `answer_kind`); names already in ``question`` do not count as a person or place, and a
    number must measure what ``measure`` (`asked_measure`) says."""
    if kind in ("person", "place"):
        # A name the question does not already give.
        for i, (t, nxt) in enumerate(zip(tokens, _past_asides(tokens), strict=True)):
            new = t.tag == "NNP" and t.form not in question
            if new and (kind == "place" or _is_person(tokens, i, nxt)):
                return True
            if kind == "place" and t.tag in ("NNG", "NNP") and nxt.form in ("에서", "에"):
                return True
        return False
    # A number the question names is not its answer (3 in "한빛마린3호는 몇 번째 배인가?").
    asked = numbers(question)
    tokens = [
        t._replace(tag="") if t.tag == "SN" and t.form.replace(",", "") in asked else t
        for t in tokens
    ]
    if kind == "date":
        after = [*tokens[1:], _END]
        return any(
            (t.tag in ("SN", "NR") and nxt.form in _TIME_UNITS)
            or t.form in _TIME_WORDS
            or (t.tag in ("NNG", "NNP") and nxt.form in _PERIODS and nxt.start - t.end <= 1)
            for t, nxt in zip(tokens, after, strict=True)
        )
    if kind not in ("number", "amount"):
        return True
    if measure == "score":
        return bool(_SCORE_WRITTEN.search(" ".join(t.form for t in tokens if t.tag)))
    if measure == "age":
        return _holds_age(tokens)
    for i, t in enumerate(tokens):
        before_number = i + 1 < len(tokens) and tokens[i + 1].tag == "SN"
        if measure == "money" and t.form in _CURRENCY_SIGNS and before_number:  # $140.6 billion
            return True
        # A native numeral counts before a counter (세 명, 두 척; not 한 빛).
        native = t.tag == "MM" and t.form in _NATIVE_NUMERALS and i + 1 < len(tokens)
        if native and (kind == "amount" or measure in ("share", "money")):
            continue
        if t.tag not in ("SN", "NR") and not native:
            continue
        # The unit: the first word after the number's own parts (1,200여 명, 68억8800만원).
        unit = next(
            (x.form for x in tokens[i + 1 : i + 5] if x.tag not in ("SN", "NR", "XSN", "SP")),
            "",
        )
        if unit.lower() in _SHARE_UNITS and measure not in ("share", "change") and kind == "amount":
            continue  # a share is not an amount
        if measure == "money" and unit and unit.lower() not in _CURRENCIES:
            # A currency named by its country: 100만 캐나다 달러, 5억 홍콩 달러.
            rest = [x for x in tokens[i + 1 : i + 6] if x.tag not in ("SN", "NR", "XSN", "SP")]
            unit = rest[1].form if len(rest) > 1 and rest[0].tag == "NNP" else unit
        if measure == "people":
            found = unit in _PEOPLE_COUNTERS
        elif measure == "share":
            found = unit.lower() in _SHARE_UNITS
        elif measure == "money":
            found = unit.lower() in _CURRENCIES
        elif measure == "change":
            found = unit.lower() in _CURRENCIES | _SHARE_UNITS
        elif kind == "amount":  # a number with a unit (억, 원, 달러, kg), not a time or rank
            found = bool(unit) and tokens[i + 1].tag in ("NNB", "NR", "SW", "SL")
            found = found and unit not in _QUOTE_MARKS  # ’0′과 ’1′: quoted, not measured
            # ... but a length of time when one is asked ("남은 시간은 얼마", "얼마 만에": 28분,
            # 3천년, 3개월), though not a year or a month (2016년, 3월).
            times = _TIME_UNITS
            if measure == "duration":
                year = re.fullmatch(r"(?:1[5-9]|20)\d\d", t.form)
                times = frozenset({"월", "년"} if year else {"월"})
            found = found and unit not in times | _SERIAL_COUNTERS
        else:  # any number (a native one before its counter), but not a date's
            found = measure == "duration" or unit not in _CALENDAR_UNITS
            found = found and (not native or tokens[i + 1].tag == "NNB")
        if found:
            return True
    return False


def _holds_age(tokens: list[Token]) -> bool:
    """Whether ``tokens`` hold an age: a number before 살 or 세 (89세, 만 20세, 15살), or one
    in brackets, alone or after another note (김영삼(89), 바레토(여, 65세))."""
    for i, t in enumerate(tokens):
        if t.tag != "SN":
            continue
        after = tokens[i + 1] if i + 1 < len(tokens) else _END
        if after.form in _AGE_UNITS:
            return True
        before = tokens[i - 1] if i else _END
        in_brackets = before.form == "(" or (before.form == "," and "(" in _forms(tokens, i))
        if in_brackets and after.form in (")", ",") and t.form.isdigit() and int(t.form) < 130:
            return True
    return False


def _forms(tokens: list[Token], i: int, back: int = 4) -> list[str]:
    return [x.form for x in tokens[max(0, i - back) : i]]


def person_names(text: str) -> list[str]:
    """The names in ``text`` that look like a person's (`_is_person`), in order, each once:
    이경진, or 넬슨 만델라 (a given and a family name, as written)."""
    [tokens] = tagged([text])
    found = []
    paired = False  # the family name of a pair found already (클린턴 of 빌 클린턴)
    for i, (t, nxt) in enumerate(zip(tokens, [*tokens[1:], _END], strict=True)):
        if t.tag == "NNP" and not paired and _is_person(tokens, i):
            # 이경진 alone, also in "이경진 카카오엔터프라이즈 대표"; 넬슨 만델라; 트럼프 of
            # "트럼프 대통령".
            pair = _pair(t, nxt) and not korean_name(t.form)
            found.append(text[t.start : nxt.end if pair else t.end])
            paired = pair
        else:
            paired = False
    return list(dict.fromkeys(found))


def _past_asides(tokens: list[Token]) -> list[Token]:
    """The token after each, past a bracketed aside of a few tokens right after it: 에 for
    전자공시스템 in "전자공시스템(DART)에 공시됐다", where the aside hides the place."""
    out = []
    for i in range(len(tokens)):
        j = i + 1
        if j < len(tokens) and tokens[j].tag == "SSO" and tokens[j].start == tokens[i].end:
            close = next(
                (k for k in range(j + 1, min(j + 8, len(tokens))) if tokens[k].tag == "SSC"), None
            )
            if close is not None:
                j = close + 1
        out.append(tokens[j] if j < len(tokens) else _END)
    return out


def asked_title(question: str) -> str:
    """The title a Korean question asks who holds, or "": 총리 in "…에 위로를 전한 일본 총리는
    누구야?", not 선수 in "MVP로 뽑힌 선수는 누구야?" (a clause says which one; any person
    may answer it)."""
    [tokens] = tagged([question])
    words = [t for t in tokens if t.tag[0] != "S"]
    for i, t in enumerate(words[:-2]):
        asks = words[i + 1].tag in ("JX", "JKS") and words[i + 2].form == "누구"
        j = i  # the whole word: 대표이사, which Kiwi cuts in two
        while j and words[j - 1].tag == "NNG" and words[j - 1].end == words[j].start:
            j -= 1
        if t.form in TITLES and asks and (j == 0 or words[j - 1].tag != "ETM"):
            return question[words[j].start : t.end]
    return ""


# The Korean titles of the roles an English question may ask who holds: a closed class, as
# `TITLES` is (a company's president is its 회장 or 사장, a country's its 대통령).
_ENGLISH_TITLES = {
    "coach": ("감독", "코치", "사령탑"),
    "manager": ("감독", "매니저"),
    "ceo": ("대표", "CEO", "최고경영자", "사장"),
    "chief executive": ("대표", "CEO", "최고경영자", "사장"),
    "prime minister": ("총리", "수상"),
    "vice president": ("부통령", "부회장", "부사장", "부총장"),
    "president": ("대통령", "회장", "사장", "총장", "대표", "의장", "총재", "위원장"),
    "chancellor": ("총리", "총장"),
    "chairman": ("회장", "의장", "위원장"),
    "chairwoman": ("회장", "의장", "위원장"),
    "minister": ("장관", "총리"),
    "mayor": ("시장",),
    "governor": ("지사", "총재"),
    "founder": ("창업", "설립", "창립"),
    "director": ("감독", "국장", "원장", "소장", "이사", "단장"),
    "spokesman": ("대변인",),
    "spokesperson": ("대변인",),
    "spokeswoman": ("대변인",),
    "ambassador": ("대사",),
    "secretary-general": ("사무총장",),
    # Whoever heads or leads a body: a state, a government, a party, a company, an agency.
    "head": (
        "수반",
        "대통령",
        "총리",
        "수상",
        "주석",
        "총통",
        "국왕",
        "대표",
        "회장",
        "사장",
        "위원장",
        "의장",
        "총재",
        "총장",
        "원장",
        "청장",
        "장관",
        "지사",
        "시장",
        "단장",
        "당수",
        "지도자",
    ),
    "pope": ("교황",),
    "king": ("왕",),
    "queen": ("여왕", "왕비"),
}
# A head is asked for only as "who heads X", "the head/leader of X" (`_HEADED`): a "head
# coach" is a coach.
_ROLES = "|".join(sorted((r for r in _ENGLISH_TITLES if r != "head"), key=len, reverse=True))
# "Who is/was [X's] [new] ROLE [of …]", not "Who is the ROLE who/that …" (a clause says
# which one, as in `asked_title`); "Who coached …"; "… as [British] ROLE".
_HOLDS_ROLE = re.compile(
    rf"^\s*who\s+(?:is|was|are|were|has been|had been|became|will be)\s+"
    rf"(?:(?!\b(?:who|that|which|when)\b)[\w.'’-]+\s+){{0,4}}?({_ROLES})s?\b"
    rf"(?!\s+(?:who|that|which)\b)",
    re.I,
)
_COACHED = re.compile(r"^\s*who\s+(?:coach(?:ed|es)?|managed|manages)\b", re.I)
_HEADED = re.compile(
    r"^\s*who\s+(?:heads|headed|chairs|chaired|(?:is|was|are|were|has been|became|will be)\s+"
    r"the\s+(?:new\s+|current\s+|former\s+)?(?:head|leader)\s+of)\b",
    re.I,
)
_AS_ROLE = re.compile(rf"^\s*who\b.*\bas\s+(?:(?:the|[\w-]+)\s+){{0,3}}?({_ROLES})\b", re.I)


def asked_titles(question: str) -> tuple[str, ...]:
    """The titles of the role a question asks who holds, any of which its answer's window
    must name, or (): a Korean question's own (`asked_title`: 총리 of "일본 총리는
    누구야?"); for an English one, the Korean titles of its role: 감독, 코치 or 사령탑 for
    "Who coached Japan …?", 총리 or 수상 for "Who succeeded Liz Truss as British prime
    minister?"; none for "Who is the player that scored …?" (a clause says which one)."""
    if language(question) != "en":
        title = asked_title(question)
        return (title,) if title else ()
    if _COACHED.match(question):
        return _ENGLISH_TITLES["coach"]
    if _HEADED.match(question):  # "Who heads Catalonia's government?": 수반, 대표, 회장 …
        return _ENGLISH_TITLES["head"]
    found = _HOLDS_ROLE.match(question) or _AS_ROLE.match(question)
    return _ENGLISH_TITLES[found[1].lower()] if found else ()


def names_title(titles: tuple[str, ...], text: str) -> bool:
    """Whether ``text`` names one of the ``titles`` a question asks who holds (`asked_titles`;
    spaces aside: 대표 이사 is 대표이사), or the question asks none."""
    plain = "".join(text.split())
    return not titles or any(title in plain for title in titles)


def _is_person(tokens: list[Token], i: int, nxt: Token | None = None) -> bool:
    """Whether proper noun ``tokens[i]`` looks like a person's name: a Korean one (three
    syllables opening with a common surname: 이경진), a foreign one (a given and a family
    name: 빌 클린턴; ``nxt`` is the token after it, by default the next), or one beside a
    title, as news writes foreign names ("트럼프 대통령", "바이든 미국 대통령", "원수
    베르나도트"). Not a place's: "미국 대통령", "트리니다드 토바고"; nor a name beside a title
    that is part of a word ("유럽 대표팀"). Kiwi also tags loanwords (클라우드, 버티컬) as proper
    nouns, so a bare proper noun is not enough for "who"."""
    t = tokens[i]
    nxt = nxt or (tokens[i + 1] if i + 1 < len(tokens) else _END)
    if korean_name(t.form):
        return True
    places = korean_places()
    if t.form in places:
        return False  # but "미국 바이든 대통령" names 바이든
    if _pair(t, nxt):
        return True
    if _after_title(tokens, i):
        return True
    prev = tokens[i - 1] if i else _END
    if prev.tag == "NNP" and prev.end + 1 == t.start and prev.form not in places:
        return False  # 삼성전자 of "이재용 삼성전자 부회장": the body the named person serves
    # The title right after the name, or after the name of the country or body it serves;
    # not when a name follows the title: then that one is the person (카카오 of "카카오 대표
    # 정신아", 삼성 of "삼성 부사장인 데이비드 은").
    for j in (i + 1, i + 2):
        after = tokens[j] if j < len(tokens) else _END
        if after.form in TITLES and after.start == tokens[j - 1].end + 1:
            named = (k for k in (j + 1, j + 3) if k < len(tokens) and tokens[k].tag == "NNP")
            return _whole(tokens, j) and not any(_after_title(tokens, k) for k in named)
        if after.tag != "NNP" or after.start != tokens[j - 1].end + 1 or korean_name(after.form):
            return False  # 삼성전자 of "삼성전자 이재용 부회장" serves 이재용
    return False


def _after_title(tokens: list[Token], i: int) -> bool:
    """Whether ``tokens[i]`` comes right after a title of its own, or after one in a clause
    ("원수 베르나도트", "삼성 부사장인 데이비드 은")."""
    prev = tokens[i - 1] if i else _END
    if prev.end + 1 != tokens[i].start:
        return False
    if prev.form in TITLES:
        return _whole(tokens, i - 1)
    clause = tokens[i - 3 : i] if i >= 3 else [_END] * 3
    titled = clause[0].form in TITLES and clause[0].end == clause[1].start
    return titled and [x.tag for x in clause[1:]] == ["VCP", "ETM"]


def _pair(t: Token, nxt: Token) -> bool:
    """Whether proper nouns ``t`` and ``nxt`` are a given and a family name (빌 클린턴), not a
    place's name or a name and a place (트리니다드 토바고, 바이든 미국), nor a body and a
    Korean name (삼성전자 이재용)."""
    places = korean_places()
    return (
        t.tag == nxt.tag == "NNP"
        and nxt.start == t.end + 1
        and not korean_name(nxt.form)  # 삼성전자 이재용: a body and a person
        and not {t.form, nxt.form, f"{t.form} {nxt.form}"} & places
    )


def _whole(tokens: list[Token], i: int) -> bool:
    """Whether ``tokens[i]`` is a word of its own: no noun or suffix glued to either side
    (대표 in 대표팀, 교수 in 교수직)."""
    glued = ("NNG", "NNP", "XSN", "XPN")
    before = tokens[i - 1] if i else _END
    after = tokens[i + 1] if i + 1 < len(tokens) else _END
    return not (
        (after.tag in glued and after.start == tokens[i].end)
        or (before.tag in glued and before.end == tokens[i].start)
    )


def korean_name(word: str) -> bool:
    """Whether ``word`` is written like a Korean person's name: three syllables opening with
    a common surname (이경진; Kiwi may tag one it does not know as a common noun). Not a
    place's name (이집트, 라오스) or a public body's (공정위), nor a place's with a
    syllable added (서울시, 한국어, 홍콩전):
    the Wikinews and KorQuAD texts hold 293 proper nouns so written, of 31 words, none a
    person's."""
    if len(word) != 3 or _hangul_length(word) != 3 or word[0] not in _SURNAMES:
        return False
    places = korean_places()
    return word not in places and word[:2] not in places and word not in korean_bodies()


def _hangul_length(text: str) -> int:
    return sum("\uac00" <= c <= "\ud7a3" for c in text)
