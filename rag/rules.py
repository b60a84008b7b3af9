"""The support rules: a claim against the sentence windows of the passages it cites.

A claim is supported by a *window* (a sentence of one cited passage with its neighbours),
never by words scattered over a whole passage. In the window:

1. every quantity of the claim occurs, by value (`rag.quantities`), and one written after a
   bare noun ("규모 11") is one the window writes after it;
2. every name of the claim occurs, as written or transliterated ("Kakao Brain" = 카카오브레인);
3. most of its content words occur, or it means nearly the same as the window's sentence
   and shares at least a word, a name or a number with it (a cosine alone verifies nothing);
4. "from A to B" keeps its order, and a rise is not told as a fall;
5. it is negated exactly when the source clauses it restates are;
6. its subject is the one the source sentence says it of.

Rules 1, 2 and 4-6 reject outright; 4-6 are also applied to the window that best matches
the claim's words, so a name borrowed from another sentence cannot carry a contradicted
claim. A claim supported only by meaning is what the rules cannot settle: an
`Evidence.judge`, when set, decides it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .claims import KO_DOWN, KO_UP, Analysis, Clause, analyze, find_name, is_anaphor, strip_particle
from .quantities import Quantity, match_all, quantities
from .support import MIN_LEXICAL, MIN_SEMANTIC, Verdict

if TYPE_CHECKING:
    from .support import Evidence

# A window is the sentence and WINDOW sentences either side, within one passage.
WINDOW = 1
# A source clause counts as restated by the claim when this share of its words is in it.
MIN_CLAUSE = 0.5
# Windows tried per claim, best first (by word overlap, then by meaning).
MAX_WINDOWS = 6
# Words too common to tie a claim to a window on their own ("말하라" shares 말 with any
# article that quotes someone).
LIGHT_WORDS = frozenset(
    "하 되 있 없 않 말 말하 것 등 수 밝히 전하 따르 대하 위하 통하 이 그 저 들 때 중 후 전 더 또 "
    "년 월 일 명 개 곳 건 및 위 내 외 간 측 관련 경우 가운데 이후 이날 지난 오늘 최근".split()
)


def check(evidence: Evidence, sentence: str, cited: Sequence[int]) -> Verdict:
    """Whether the passages numbered ``cited`` support ``sentence``, and why (`Verdict`).

    Windows are tried best first: most of the claim's numbers and names, then most of its
    words (and meaning). The first window holding all its numbers and names decides; a
    weaker window cannot rescue a claim the best one contradicts.
    """
    sentences = evidence.sentences
    rows = [i for i, s in enumerate(sentences) if s.n in cited]
    if not rows:
        return Verdict(False, 0.0, "no-passage")
    [claim] = analyze([sentence])
    analyses = evidence.analyses
    windows = {i: _window(evidence, i) for i in rows}
    names_in = {i: _named_in(evidence, w) for i, w in windows.items()}
    hits = {j: _hits(claim, analyses[j]) for w in names_in.values() for j in w}
    found = {i: len(set().union(*(hits[j] for j in w))) for i, w in names_in.items()}
    lexical = {
        i: _share(claim.terms, set().union(*(analyses[j].terms for j in w)))
        for i, w in windows.items()
    }
    semantic = dict.fromkeys(rows, 0.0)
    if max(lexical.values()) < MIN_LEXICAL:
        similarity = evidence.similarity(sentence)
        semantic = {i: float(max(similarity[j] for j in windows[i])) for i in rows}
    # The window that best matches what the claim says (its words less names) decides on
    # a contradiction even when the names were taken from elsewhere: "이경진 내정자는 ...
    # 확정되었다고 말했다" is judged against "이 신임 대표이사 내정자는 ... 확정되지 않은
    # 사안이라고 말을 아꼈다", not against the sentence that names 이경진.
    content = {t for t in claim.terms - LIGHT_WORDS if not any(t in e for e in claim.entities)}
    said = {
        i: _share(content, set().union(*(analyses[j].terms for j in w))) for i, w in windows.items()
    }
    best = max(rows, key=lambda i: said[i])
    if said[best] >= MIN_LEXICAL:
        reason = _contradiction(evidence, claim, windows[best], names_in[best])
        if reason is not None:
            text = " ".join(analyses[j].text for j in windows[best])
            return Verdict(False, lexical[best], reason, sentences[best].n, text)
    order = sorted(rows, key=lambda i: (-found[i], -(lexical[i] + semantic[i])))
    first: Verdict | None = None
    for i in order[:MAX_WINDOWS]:
        v = _in_window(evidence, claim, windows[i], names_in[i], lexical[i], semantic[i])
        v.passage = sentences[i].n
        first = first or v
        if v.reason not in {"number", "entity"}:
            return _settle(evidence, sentence, v)
    assert first is not None
    return first


def _hits(claim: Analysis, source: Analysis) -> set[str]:
    """The claim's numbers and names that ``source`` holds."""
    found = {q.text for q in claim.quantities if any(q.matches(s) for s in source.quantities)}
    return found | {e for e in claim.entities if find_name(e, source.text) is not None}


def _settle(evidence: Evidence, sentence: str, v: Verdict) -> Verdict:
    """Ask the judge about a claim supported by meaning only; without one, such a claim
    stands when it shares a word, name or number with the window (``semantic``)."""
    if v.reason not in {"semantic", "unsettled"}:
        return v
    if evidence.judge is not None:
        entailed = evidence.judge(sentence, v.window)
        if entailed is not None:
            return Verdict(entailed, v.score, "judge", v.passage, v.window)
    if v.reason == "unsettled":
        return Verdict(False, v.score, "overlap", v.passage, v.window)
    return v


def _window(evidence: Evidence, i: int) -> list[int]:
    n = evidence.sentences[i].n
    return [
        j
        for j in range(i - WINDOW, i + WINDOW + 1)
        if 0 <= j < len(evidence.sentences) and evidence.sentences[j].n == n
    ]


def _share(terms: set[str], found: set[str]) -> float:
    return len(terms & found) / len(terms) if terms else 0.0


def _named_in(evidence: Evidence, rows: list[int]) -> list[int]:
    """Where a window's names may be found: the window, and when one of its sentences
    points back ("이 신임 대표이사 내정자는", "그는"), the sentences before it in its passage
    (that is where "이경진" was named)."""
    analyses, sentences = evidence.analyses, evidence.sentences
    if not any(is_anaphor(s) for j in rows for s in analyses[j].subjects):
        return rows
    n = sentences[rows[0]].n
    earlier = [j for j in range(rows[0]) if sentences[j].n == n]
    return earlier + rows


def _in_window(
    evidence: Evidence,
    claim: Analysis,
    rows: list[int],
    named_in: list[int],
    lexical: float,
    semantic: float,
) -> Verdict:
    sources = [evidence.analyses[j] for j in rows]
    text = " ".join(a.text for a in sources)
    score = max(lexical, semantic)

    def fail(reason: str) -> Verdict:
        return Verdict(False, score, reason, window=text)

    window_quantities = quantities(text)
    if any(not _in_name(q, text) for q in match_all(claim.quantities, window_quantities)):
        return fail("number")
    if not claim.latin and _relabelled(claim, text, window_quantities):
        return fail("number")
    names = {e: _find_in(e, [evidence.analyses[j] for j in named_in]) for e in claim.entities}
    if any(found is None for found in names.values()):
        return fail("entity")
    shared = claim.terms & _terms(sources) - LIGHT_WORDS
    anchors = len(claim.quantities) + len(names) + len(shared)
    if (reason := _contradicts(claim, sources, names, text, window_quantities)) is not None:
        return fail(reason)
    if lexical >= MIN_LEXICAL:
        return Verdict(True, score, "lexical", window=text)
    if semantic >= MIN_SEMANTIC:
        # Supported by meaning alone: the rules found nothing wrong but cannot confirm it.
        # Sharing nothing with the window ("HACKED"), it needs the judge to stand.
        return Verdict(bool(anchors), score, "semantic" if anchors else "unsettled", window=text)
    return fail("overlap")


def _contradiction(
    evidence: Evidence, claim: Analysis, rows: list[int], named_in: list[int]
) -> str | None:
    """`_contradicts` for a window whose names and numbers are not checked first."""
    sources = [evidence.analyses[j] for j in rows]
    text = " ".join(a.text for a in sources)
    names = {e: _find_in(e, [evidence.analyses[j] for j in named_in]) for e in claim.entities}
    return _contradicts(claim, sources, names, text, quantities(text))


def _contradicts(
    claim: Analysis,
    sources: list[Analysis],
    names: dict[str, str | None],
    text: str,
    window_quantities: list[Quantity],
) -> str | None:
    """``direction``, ``negation`` or ``subject`` when the window says otherwise."""
    anchor = _anchor(claim, sources, names)
    if (reason := _direction(claim, anchor, text, window_quantities)) is not None:
        return reason
    if _negation_differs(claim, anchor):
        return "negation"
    if _subject_differs(claim, anchor, names, text):
        return "subject"
    return None


_LABEL = re.compile(r"([가-힣]{2,})\s*$")
_ENDS_IN_PARTICLE = re.compile(r"(?:은|는|이|가|을|를|의|에|서|로|와|과|도|만|고|며|면|다)$")


def _relabelled(claim: Analysis, window: str, window_quantities: list[Quantity]) -> bool:
    """A number put on another's label: "규모 11의 지진" where the window says "규모 4.5".

    A claim's number right after a word ("규모", "징역", "매출") must be one the window
    also writes right after that word, when the window writes any there.
    """
    for q in claim.quantities:
        m = _LABEL.search(claim.text[: q.start])
        if not m:
            continue
        label = m.group(1)
        if _ENDS_IN_PARTICLE.search(label):
            continue  # "볼보트럭이 12일", "폭이 1406억": a subject, not the number's label
        labelled = [
            s
            for s in window_quantities
            if re.search(
                rf"(?<![가-힣]){re.escape(label)}\s*$", window[max(0, s.start - 12) : s.start]
            )
        ]
        if labelled and not any(q.matches(s) for s in labelled):
            return True
    return False


def _in_name(q: Quantity, text: str) -> bool:
    """A bare number the source writes inside a name ("코GPT 2.0" for "코GPT2.0")."""
    if q.unit is not None:
        return False
    return re.search(rf"[A-Za-z]{re.escape(q.text)}(?![\d.])", text) is not None


def _find_in(name: str, sources: list[Analysis]) -> str | None:
    return next((f for a in sources if (f := find_name(name, a.text)) is not None), None)


def _terms(sources: list[Analysis]) -> set[str]:
    return set().union(*(a.terms for a in sources))


def _anchor(claim: Analysis, sources: list[Analysis], names: dict[str, str | None]) -> Analysis:
    """The window sentence the claim restates: most shared words, names and numbers."""

    def weight(a: Analysis) -> float:
        shared = len(claim.terms & a.terms)
        named = sum(
            1
            for found in names.values()
            if found and found.replace(" ", "") in a.text.replace(" ", "")
        )
        numbered = len(claim.quantities) - len(match_all(claim.quantities, a.quantities))
        return shared + named + numbered

    return max(sources, key=weight)


# ----------------------------------------------------------------------------- direction

_KO_PAIR_END = re.compile(r"^\s*(?:으로|로|까지)")


def _pairs(text: str, qs: list[Quantity]) -> list[tuple[Quantity, Quantity]]:
    """Ordered (from, to) pairs: "A에서 B로", "from A to B", "A to B", "A → B", "to B from A"."""
    pairs = []
    for a, b in itertools.pairwise(qs):
        between, after = text[a.end : b.start], text[b.end : b.end + 4]
        before = text[max(0, a.start - 6) : a.start].lower()
        if (
            (re.match(r"^\s*(?:에서|부터)", between) and _KO_PAIR_END.match(after))
            or re.fullmatch(r"\s*(?:→|->|~|to)\s*", between, re.IGNORECASE)
            or (re.search(r"\bfrom\s*$", before) and re.search(r"\bto\b", between, re.IGNORECASE))
        ):
            pairs.append((a, b))
        elif re.search(r"\bto\s*$", before) and re.fullmatch(r"\s*from\s*", between, re.IGNORECASE):
            pairs.append((b, a))
    return pairs


def _direction(
    claim: Analysis, anchor: Analysis, window: str, window_quantities: list[Quantity]
) -> str | None:
    """``direction`` when the claim reverses a change the source states, else ``None``."""
    for a, b in _pairs(claim.text, claim.quantities):
        # The claim contradicts itself: "1406억원에서 368억원으로 늘었다".
        if (claim.change == {1} and a.value > b.value) or (
            claim.change == {-1} and a.value < b.value
        ):
            return "direction"
        forward = reverse = False
        for x, y in _pairs(window, window_quantities):
            forward |= a.matches(x) and b.matches(y)
            reverse |= a.matches(y) and b.matches(x)
        if reverse and not forward:
            return "direction"
        if not forward and not reverse:
            # No explicit pair in the source: its order of mention is the direction.
            first_a = [q.start for q in window_quantities if a.matches(q)]
            first_b = [q.start for q in window_quantities if b.matches(q)]
            if len(first_a) == 1 and len(first_b) == 1 and first_a[0] > first_b[0]:
                return "direction"
    # A rise told as a fall (or back): each clause of the claim that names one change
    # against the source clause it restates (matched on its other words).
    if claim.latin != anchor.latin:
        said = anchor.change if len(anchor.change) == 1 else set()
        return "direction" if len(claim.change) == 1 and said and not claim.change & said else None
    for c in claim.clauses:
        if len(c.change) != 1:
            continue
        # The source clauses this one restates, judged without the change words themselves.
        words = c.terms - KO_UP - KO_DOWN
        changes: set[int] = set()
        for s in anchor.clauses:
            if _share(s.terms - KO_UP - KO_DOWN, words) >= MIN_CLAUSE:
                changes |= s.change
        if changes and not c.change & changes:
            return "direction"
    return None


# ------------------------------------------------------------------------------ negation


def _restated(claim: Analysis, anchor: Analysis) -> list[Clause]:
    """The source clauses the claim restates: most of their words, and their predicate."""
    return [
        c
        for c in anchor.clauses
        if _share(c.terms, claim.terms) >= MIN_CLAUSE
        and (c.predicate is None or c.predicate in claim.terms)
    ]


def _negation_differs(claim: Analysis, anchor: Analysis) -> bool:
    """Negated where the source is not, or the reverse, in the clauses the claim restates."""
    if claim.latin != anchor.latin:
        # Across languages the clauses can't be lined up: only a negated claim against a
        # sentence without any negation is clear.
        return claim.negations > 0 and anchor.negations == 0
    restated = _restated(claim, anchor)
    if restated:
        return claim.negations != sum(c.negations for c in restated)
    # The claim words the predicate its own way: a negation there needs one in the clauses
    # it otherwise restates.
    similar = [c for c in anchor.clauses if _share(claim.terms, c.terms) >= MIN_CLAUSE]
    return claim.negations > 0 and bool(similar) and not any(c.negations for c in similar)


# ------------------------------------------------------------------------------- subject


def _words(phrase: str) -> list[str]:
    """The words of a noun phrase as they would be found in a source: without particles,
    quotes and brackets."""
    words = (w.strip(".") for w in re.split(r"[^\w.]+", phrase))
    # One-syllable words are determiners and the like ("새 대표" for "신임 대표").
    return [strip_particle(w) for w in words if len(w) >= 2]


def _subject_differs(
    claim: Analysis, anchor: Analysis, names: dict[str, str | None], window: str
) -> bool:
    """The claim's subject is not what the source says it of.

    Rejected: a subject whose words are not in the window at all; an entity that the source
    sentence names but outside every subject phrase ("카카오엔터프라이즈는 ... 전문가로" for
    "이 신임 대표이사 내정자는 ... 카카오엔터프라이즈 내 ... 총괄해왔다"); or one the sentence
    doesn't name while its subject is someone else (not a pronoun-like "그는").
    """
    if not claim.subjects:
        return False
    subject = claim.subjects[0]
    if not claim.latin and not all(_contains(window, w) for w in _words(subject)):
        return True  # "버티컬이 ... 들어갔다": the window doesn't speak of this subject at all
    if not anchor.subjects:
        return False
    entity = next((e for e in claim.entities if e in subject), None)
    if entity is None:
        return False
    found = names.get(entity) or entity
    if any(_contains(s, found) for s in anchor.subjects):
        return False
    if _contains(anchor.text, found):
        return True  # named in the sentence, but not as the one it is said of
    # Not in the sentence: fine if the sentence's subject only points back ("그는", "이
    # 회사는"), else the sentence says it of someone else.
    return any(not is_anaphor(s) for s in anchor.subjects)


def _contains(text: str, name: str) -> bool:
    return name.replace(" ", "").lower() in text.replace(" ", "").lower()
