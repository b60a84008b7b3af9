"""English names of Korea's public bodies, in Korean: the Ministry of Unification is 통일부.

Korean news names a ministry, agency or commission by its Korean name (통일부, 기상청,
공정거래위원회) or its short form (공정위, 선관위), never by its English one, and neither
sound (`rag.names`) nor the embedding model (`rag.translated`) finds 기상청 for "Korea
Meteorological Administration". No library holds these names, so this is a table: the
bodies of the national government (as of 2023, and the names that news of 2005 to 2023
uses for the same body before it was renamed: 지식경제부, 교육과학기술부), the courts,
the constitutional bodies and the public bodies that news names most. English writes a
ministry two ways (the Ministry of Unification, the Unification Ministry), with or without
Korea ("Korea Fair Trade Commission", "South Korea's Fair Trade Commission"); each form is
one name here, so that "Ministry of Employment and Labor" is not read as two names.
"""

from __future__ import annotations

import functools
import re

# (English forms, Korean names: the full name first, then short and earlier names).
_BODIES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    # The legislature, the courts and the constitutional bodies.
    (("National Assembly",), ("국회",)),
    (("Constitutional Court",), ("헌법재판소", "헌재")),
    (("Supreme Court",), ("대법원",)),
    (("National Election Commission",), ("중앙선거관리위원회", "선거관리위원회", "선관위")),
    (("Board of Audit and Inspection",), ("감사원",)),
    (("National Human Rights Commission",), ("국가인권위원회", "인권위")),
    # The president's and the prime minister's offices, security and the police.
    (("Presidential Office",), ("대통령실", "청와대")),
    (("Blue House", "Cheong Wa Dae"), ("청와대",)),
    (("Office for Government Policy Coordination",), ("국무조정실",)),
    (("National Intelligence Service",), ("국가정보원", "국정원")),
    (("Supreme Prosecutors' Office", "Supreme Prosecutors Office"), ("대검찰청", "대검")),
    (("National Police Agency",), ("경찰청",)),
    (
        ("Corruption Investigation Office for High-ranking Officials",),
        ("고위공직자범죄수사처", "공수처"),
    ),
    (("Anti-Corruption and Civil Rights Commission",), ("국민권익위원회", "권익위")),
    (("Joint Chiefs of Staff",), ("합동참모본부", "합참")),
    # The ministries.
    (("Ministry of Economy and Finance",), ("재정경제부", "재경부")),
    (("Ministry of Strategy and Finance",), ("기획재정부", "기재부")),
    (("Finance Ministry",), ("기획재정부", "기재부", "재정경제부", "재경부")),
    (
        ("Ministry of Education", "Education Ministry"),
        ("교육부", "교육과학기술부", "교과부", "교육인적자원부"),
    ),
    (
        ("Ministry of Education, Science and Technology",),
        ("교육과학기술부", "교과부"),
    ),
    (
        ("Ministry of Science and ICT", "Ministry of Science", "Science Ministry"),
        ("과학기술정보통신부", "과기정통부", "미래창조과학부", "미래부", "과학기술부"),
    ),
    (("Ministry of Science, ICT and Future Planning",), ("미래창조과학부", "미래부")),
    (
        (
            "Ministry of Foreign Affairs and Trade",
            "Ministry of Foreign Affairs",
            "Foreign Ministry",
        ),
        ("외교부", "외교통상부", "외통부"),
    ),
    (("Ministry of Unification", "Unification Ministry"), ("통일부",)),
    (("Ministry of Justice", "Justice Ministry"), ("법무부",)),
    (
        (
            "Ministry of National Defense",
            "Ministry of National Defence",
            "Ministry of Defense",
            "Defense Ministry",
            "Defence Ministry",
        ),
        ("국방부",),
    ),
    (
        (
            "Ministry of the Interior and Safety",
            "Ministry of Public Administration and Security",
            "Ministry of the Interior",
            "Interior Ministry",
        ),
        ("행정안전부", "행안부", "안전행정부", "행정자치부"),
    ),
    (("Ministry of Security and Public Administration",), ("안전행정부", "안행부")),
    (
        (
            "Ministry of Culture, Sports and Tourism",
            "Ministry of Culture",
            "Culture Ministry",
        ),
        ("문화체육관광부", "문체부", "문화관광부"),
    ),
    (
        (
            "Ministry of Agriculture, Food and Rural Affairs",
            "Ministry of Agriculture",
            "Agriculture Ministry",
        ),
        ("농림축산식품부", "농식품부", "농림수산식품부", "농림부"),
    ),
    (
        (
            "Ministry of Trade, Industry and Energy",
            "Ministry of Trade",
            "Ministry of Industry",
            "Trade Ministry",
            "Industry Ministry",
        ),
        ("산업통상자원부", "산업부", "지식경제부", "지경부", "산업자원부"),
    ),
    (("Ministry of Knowledge Economy",), ("지식경제부", "지경부")),
    (
        ("Ministry of Health and Welfare", "Health Ministry", "Welfare Ministry"),
        ("보건복지부", "복지부", "보건복지가족부"),
    ),
    (("Ministry of Environment", "Environment Ministry"), ("환경부",)),
    (
        ("Ministry of Employment and Labor", "Ministry of Labor", "Labor Ministry"),
        ("고용노동부", "노동부"),
    ),
    (
        (
            "Ministry of Gender Equality and Family",
            "Ministry of Gender Equality",
            "Gender Equality Ministry",
        ),
        ("여성가족부", "여가부", "여성부"),
    ),
    (
        (
            "Ministry of Land, Infrastructure and Transport",
            "Ministry of Land, Transport and Maritime Affairs",
            "Ministry of Land",
            "Land Ministry",
            "Transport Ministry",
        ),
        ("국토교통부", "국토부", "국토해양부"),
    ),
    (("Ministry of Oceans and Fisheries", "Oceans Ministry"), ("해양수산부", "해수부")),
    (("Ministry of SMEs and Startups",), ("중소벤처기업부", "중기부")),
    (("Small and Medium Business Administration",), ("중소기업청", "중기청")),
    (
        ("Ministry of Patriots and Veterans Affairs",),
        ("국가보훈부", "국가보훈처", "보훈처"),
    ),
    (("Ministry of Personnel Management",), ("인사혁신처",)),
    (("Ministry of Food and Drug Safety",), ("식품의약품안전처", "식약처")),
    # Agencies: the US's of the same English name is the second Korean name given.
    (("Food and Drug Administration",), ("식품의약품안전청", "식약청", "식품의약국")),
    (("Disease Control and Prevention Agency",), ("질병관리청", "질병청")),
    (
        ("Centers for Disease Control and Prevention", "Centers for Disease Control"),
        ("질병관리본부", "질병통제예방센터"),
    ),
    (("Meteorological Administration",), ("기상청",)),
    (("National Tax Service",), ("국세청",)),
    (("Customs Service",), ("관세청",)),
    (("Statistics Korea", "National Statistical Office"), ("통계청",)),
    (("Public Procurement Service",), ("조달청",)),
    (("Coast Guard",), ("해양경찰청", "해경", "해안경비대")),
    (("National Fire Agency",), ("소방청",)),
    (("Forest Service",), ("산림청",)),
    (("Cultural Heritage Administration",), ("문화재청", "국가유산청")),
    (("Rural Development Administration",), ("농촌진흥청", "농진청")),
    (("Intellectual Property Office",), ("특허청",)),
    (("Military Manpower Administration",), ("병무청",)),
    (("Defense Acquisition Program Administration",), ("방위사업청", "방사청")),
    # Commissions and regulators.
    (("Fair Trade Commission",), ("공정거래위원회", "공정위")),
    (("Financial Services Commission",), ("금융위원회", "금융위")),
    (("Financial Supervisory Service",), ("금융감독원", "금감원")),
    (("Communications Commission",), ("방송통신위원회", "방통위")),
    (("Communications Standards Commission",), ("방송통신심의위원회", "방심위")),
    (("Nuclear Safety and Security Commission",), ("원자력안전위원회", "원안위")),
    # Public corporations and associations.
    (("Bank of Korea",), ("한국은행", "한은")),
    (("Korea Exchange",), ("한국거래소",)),
    (("Deposit Insurance Corporation",), ("예금보험공사",)),  # not 예보: a forecast
    (("Electric Power Corporation",), ("한국전력공사", "한국전력", "한전")),
    (("National Pension Service",), ("국민연금공단", "국민연금")),
    (("National Health Insurance Service",), ("국민건강보험공단", "건보공단")),
    (("Land and Housing Corporation",), ("한국토지주택공사", "토지주택공사")),
    (("Railroad Corporation",), ("한국철도공사", "코레일")),
    (("Development Institute",), ("한국개발연구원",)),
    (("Astronomy and Space Science Institute",), ("한국천문연구원", "천문연구원", "천문연")),
    (("International Trade Association",), ("한국무역협회", "무역협회")),
    (("Trade-Investment Promotion Agency",), ("대한무역투자진흥공사", "코트라")),
    (("Football Association",), ("대한축구협회", "축구협회")),
    (("Baseball Organization",), ("한국야구위원회", "KBO")),
    (("Broadcasting System",), ("한국방송공사", "KBS")),
    (("Central News Agency",), ("조선중앙통신",)),
)
# "Korea", "Korean", "South Korea" or "South Korea's" before a body's name, "of Korea" or
# "of the Republic of Korea" after it: part of the name ("the Korea Fair Trade Commission").
_BEFORE = r"(?:(?:Republic\s+of\s+|South\s+)?Korea(?:n|['’]s)?\s+)?"
_AFTER = r"(?:\s+of\s+(?:the\s+Republic\s+of\s+)?Korea\b)?"


@functools.cache
def _table() -> tuple[dict[str, tuple[str, ...]], re.Pattern[str]]:
    table = {" ".join(form.lower().split()): korean for forms, korean in _BODIES for form in forms}
    forms = sorted((f for forms, _ in _BODIES for f in forms), key=len, reverse=True)
    names = "|".join(re.escape(f).replace(r"\ ", r"\s+") for f in forms)
    return table, re.compile(rf"\b{_BEFORE}(?:{names}){_AFTER}(?![\w-])")


def _key(name: str) -> str:
    """A body's name less its Korea and its case ("South Korea's Unification Ministry":
    unification ministry)."""
    match = re.fullmatch(rf"{_BEFORE}(.+?){_AFTER}", " ".join(name.split()))
    return (match.group(1) if match else name).lower().replace("’", "'")


def korean_names(name: str) -> tuple[str, ...]:
    """The Korean names of a public body's English name, the full name first ("Fair Trade
    Commission" -> 공정거래위원회, 공정위), or () if the table holds none. "Statistics Korea"
    and "Bank of Korea" are named with Korea, and so are looked up whole."""
    table = _table()[0]
    return table.get(" ".join(name.lower().split()), ()) or table.get(_key(name), ())


def find(text: str) -> list[tuple[int, int]]:
    """Where ``text`` names a body of the table, as spans, the longest form first at each
    place ("Ministry of Employment and Labor", not "Ministry of Labor")."""
    return [m.span() for m in _table()[1].finditer(text)]


def cut(text: str) -> tuple[list[str], str]:
    """The bodies ``text`` names (`find`), each as one name ("and" and commas in it), and
    ``text`` with a comma in place of each, for the rest of its names to be read apart."""
    names: list[str] = []
    for start, end in reversed(find(text)):
        names.insert(0, " ".join(text[start:end].split()))
        text = f"{text[:start]},{text[end:]}"
    return names, text


# Korean names of another country's body that English names as Korea's (the US's Food and Drug
# Administration is 식품의약국): an English name may mean either, a Korean name only its own.
_ABROAD = frozenset({"식품의약국", "질병통제예방센터", "해안경비대"})


@functools.cache
def _other_names() -> dict[str, tuple[str, ...]]:
    others: dict[str, list[str]] = {}
    for _, korean in _BODIES:
        names = [k for k in korean if k not in _ABROAD]
        for k in names:
            known = others.setdefault(k, [])
            known.extend(o for o in names if o != k and o not in known)
    return {k: tuple(v) for k, v in sorted(others.items(), key=lambda kv: -len(kv[0]))}


def other_names(name: str) -> tuple[str, ...]:
    """The other Korean names of the body a Korean ``name`` is ("한은" -> 한국은행; "공정위" ->
    공정거래위원회), its earlier names too (교육부 -> 교육과학기술부), or ()."""
    return _other_names().get(name, ())


def written_otherwise(name: str) -> list[str]:
    """``name`` (한은행사, say) with the body it opens with written each other way it is
    (한국은행행사), the longest body first; [] if it opens with none."""
    for body, others in _other_names().items():
        if name.startswith(body):
            return [other + name[len(body) :] for other in others]
    return []


@functools.cache
def korean_bodies() -> frozenset[str]:
    """Every Korean name of the table: a body's, not a person's (공정위 opens with 공, a
    surname)."""
    return frozenset(k for _, korean in _BODIES for k in korean)
