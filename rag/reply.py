"""A model's reply with the wrapping taken off: reasoning, marker variants, refusals, loops.

Small models answer in many shapes. Before an answer is checked, its reasoning
(``<think>…</think>``) is removed, citation markers written as ``【1】``, ``[1-2]``, ``[^1]``,
``[1번]`` or ``[출처 1]`` become ``[1]``, and a refusal is recognised whatever its quotes,
punctuation or markers. While it streams, a reply that starts repeating itself is cut.
Hand-written: these are the shapes seen from real servers, and no library covers them.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

# -- reasoning -------------------------------------------------------------------------------

_OPEN = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_CLOSE = re.compile(r"</(think|thinking|reasoning)>", re.IGNORECASE)
_TAG_CHARS = len("</reasoning>")


def strip_reasoning(text: str) -> str:
    """``text`` without its reasoning blocks.

    An unclosed block (the model ran out of tokens while thinking) takes the rest of the
    text with it; a closing tag with no opening one (chat templates that open the block in
    the prompt) takes everything before it.
    """
    first_close, first_open = _CLOSE.search(text), _OPEN.search(text)
    if first_close and (first_open is None or first_close.start() < first_open.start()):
        text = text[first_close.end() :]
    out: list[str] = []
    while True:
        opening = _OPEN.search(text)
        if opening is None:
            out.append(text)
            break
        out.append(text[: opening.start()])
        closing = _CLOSE.search(text, opening.end())
        if closing is None:
            break
        text = text[closing.end() :]
    return "".join(out)


@dataclass
class ReasoningFilter:
    """Removes reasoning blocks from a stream of pieces as they arrive.

    Only what could be the start of a tag is held back, so the answer still streams.
    """

    inside: bool = False
    #: Whether text already let through turned out to be reasoning: a closing tag came with
    #: no opening one (the chat template opened the block in the prompt).
    shown_reasoning: bool = False
    _pending: str = ""
    _shown_any: bool = False

    def feed(self, piece: str) -> str:
        """The part of ``piece`` (with what was held back) that is answer text."""
        text = self._pending + piece
        shown: list[str] = []
        while text:
            if self.inside:
                closing = _CLOSE.search(text)
                if closing is None:
                    text = text[-_TAG_CHARS:]
                    break
                text, self.inside = text[closing.end() :], False
                continue
            opening, closing = _OPEN.search(text), _CLOSE.search(text)
            if closing and (opening is None or closing.start() < opening.start()):
                # A stray closing tag: what came before it was reasoning. What is still here
                # is held back; what was shown already cannot be taken back, but is said.
                self.shown_reasoning = self._shown_any or bool(shown)
                shown.clear()
                text = text[closing.end() :]
                continue
            if opening is None:
                keep = _partial_tag(text)
                shown.append(text[: len(text) - keep])
                text = text[len(text) - keep :]
                break
            shown.append(text[: opening.start()])
            text, self.inside = text[opening.end() :], True
        self._pending = text
        out = "".join(shown)
        self._shown_any = self._shown_any or bool(out.strip())
        return out

    def flush(self) -> str:
        """What was held back, at the end of the stream."""
        rest, self._pending = ("" if self.inside else self._pending), ""
        return rest


def _partial_tag(text: str) -> int:
    """Length of the end of ``text`` that could grow into a reasoning tag."""
    start = text.rfind("<", max(0, len(text) - _TAG_CHARS))
    if start < 0:
        return 0
    tail = text[start:].lower()
    tags = ("<think>", "<thinking>", "<reasoning>", "</think>", "</thinking>", "</reasoning>")
    return len(tail) if any(t.startswith(tail) for t in tags) else 0


# -- citation markers ------------------------------------------------------------------------

_ITEM = r"\d{1,4}\s*(?:[-–~]\s*\d{1,4})?\s*번?"
_LABEL = r"(?:출처|근거|문단|기사|자료|passage|source|doc(?:ument)?|ref(?:erence)?)\s*:?\s*"
# One bracketed citation in any of the shapes models write; (1) is left alone, since
# parentheses number list items and quantities as often as they cite.
_VARIANT = re.compile(
    rf"[\[【［]\s*(?:{_LABEL})?[\^#]?\s*({_ITEM}(?:\s*(?:[,;、]|and|및)\s*{_ITEM})*)\s*[\]】］]",
    re.IGNORECASE,
)
# Something in brackets with a number that is still not a plain [n] after normalising.
_LEFTOVER = re.compile(r"[\[【［][^\[\]【】［］\n]{0,20}\d[^\[\]【】［］\n]{0,20}[\]】］]")
_PLAIN = re.compile(r"\[\d+\]")
MAX_RANGE = 10


def normalize_markers(text: str) -> tuple[str, list[str]]:
    """``text`` with every citation variant written as ``[n]``, and the bracketed
    leftovers that hold a number but could not be read as citations."""

    def plain(m: re.Match[str]) -> str:
        numbers: list[int] = []
        for item in re.split(r"\s*(?:[,;、]|and|및)\s*", m.group(1), flags=re.IGNORECASE):
            bounds = [int(x) for x in re.findall(r"\d+", item)]
            if len(bounds) == 2 and 0 < bounds[1] - bounds[0] <= MAX_RANGE and bounds[1] < 100:
                numbers.extend(range(bounds[0], bounds[1] + 1))
            elif len(bounds) == 2:
                return m.group(0)  # "[2020-2023]" is a span of years, not a citation
            else:
                numbers.extend(bounds)
        return "".join(f"[{n}]" for n in numbers)

    normalized = _VARIANT.sub(plain, text)
    leftovers = [m.group(0) for m in _LEFTOVER.finditer(normalized) if not _PLAIN.fullmatch(m[0])]
    return normalized, leftovers


# A source's own reference marker, glued to the word or full stop it follows (Wikipedia's and
# Wikinews's "발표하였다.[3]"): quoted as it is, it reads as a citation of passage 3.
_FOOTNOTE = re.compile(r"(?<=[^\s\[\]])\[\d{1,3}\]")


def strip_footnotes(text: str) -> str:
    """``text`` (a passage or a sentence quoted from one) without its source's own reference
    markers ("발표하였다.[3]" -> "발표하였다."); a bracketed number after a space is kept."""
    return _FOOTNOTE.sub("", text)


def only_markers(text: str) -> bool:
    """Whether ``text`` holds citation markers and nothing that says anything."""
    return bool(_PLAIN.search(text)) and not re.search(r"\w", _PLAIN.sub("", text))


# -- refusals --------------------------------------------------------------------------------

# How close (difflib ratio, on letters only) a sentence must be to a refusal template:
# a changed word or two ("기사에는" for "색인된 기사에는") stays above it, an answer does not.
MIN_REFUSAL_SIMILARITY = 0.8
# Refusals in other words; used only for a reply that cites nothing, since "the article
# does not say why [2]" is an answer.
_REFUSAL_MEANING = re.compile(
    r"(기사|문단|자료|정보|본문|내용|지문).{0,25}(없습니다|없다|없어요|않습니다|않는다|알 수 없)"
    r"|(passages?|articles?|context|text|information)\b.{0,40}\b"
    r"(do(es)? not|don't|doesn't|contains? no|provides? no|no information)"
    r"|\b(cannot|can't|unable to) (be )?(answer|determin|find)"
    r"|(답|대답|답변)\S{0,4}\s?수\s?(없|가\s?없)",  # 답할 수 없습니다, 답변드릴 수가 없어요
    re.IGNORECASE,
)


def _letters(text: str) -> str:
    return re.sub(r"[\W_\d]+", "", _PLAIN.sub("", text)).lower()


def is_refusal(text: str, templates: list[str]) -> bool:
    """Whether a reply refuses: its first sentence is one of the refusal ``templates``
    (any language, any quotes, punctuation or markers, a word or two changed), or it cites
    nothing and says the passages do not hold the answer."""
    first = re.split(r"(?<=[.!?。])\s+|\n", text.strip(), maxsplit=1)[0]
    said = _letters(first)
    for template in templates:
        wanted = _letters(template)
        if said.startswith(wanted) and len(said) < 1.5 * len(wanted):
            return True
        if difflib.SequenceMatcher(None, said, wanted).ratio() >= MIN_REFUSAL_SIMILARITY:
            return True
    return not _PLAIN.search(text) and bool(_REFUSAL_MEANING.search(text))


# -- loops -----------------------------------------------------------------------------------


@dataclass
class LoopGuard:
    """Notices a reply that repeats itself, as small models do at temperature 0.

    A loop is a block of text repeated back to back until it spans ``min_span`` characters
    (and at least ``repeats`` copies), or one sentence of 20 or more characters written
    ``repeats`` times.
    """

    repeats: int = 3
    min_span: int = 90
    max_unit: int = 400
    _checked: int = 0
    _scanned: int = 0  # where the sentences not yet counted start
    _looked: int = 0  # how much text the last look at sentences saw
    _seen: dict[str, list[int]] = field(default_factory=dict)

    def cut(self, text: str) -> int | None:
        """Where to cut ``text`` (everything so far) so the repetition is gone, or ``None``."""
        if len(text) - self._checked < 8:
            return None
        self._checked = len(text)
        for unit in range(4, min(self.max_unit, len(text) // self.repeats) + 1):
            copies = max(self.repeats, -(-self.min_span // unit))
            if copies * unit > len(text) or text[-1] != text[-1 - unit]:
                continue  # (the second test: a cheap look before comparing blocks)
            block = text[-unit:]
            if all(text[-(i + 1) * unit : -i * unit] == block for i in range(1, copies)):
                start = len(text) - copies * unit
                while start > 0 and text[start - 1] == text[start - 1 + unit]:
                    start -= 1  # back to where the repetition began, whatever its phase
                cut = start + unit
                if not re.match(r"[\s.!?。]", text[cut - 1]):  # end the copy's last sentence
                    end = re.search(r"[.!?。]", text[cut : cut + unit])
                    cut += end.end() if end else 0
                return cut
        return self._repeated_sentence(text)

    def _repeated_sentence(self, text: str) -> int | None:
        """Where the second copy of a sentence said ``repeats`` times starts. Each whole
        sentence is counted once, as the text grows (rescanning all of it every few
        characters cost 5 s of CPU at 40,000), and only once a sentence may have ended."""
        looked, self._looked = self._looked, len(text)
        if not _SENTENCE_END.search(text, looked):
            return None
        for m in _SENTENCE.finditer(text, self._scanned):
            if m.end() == len(text):
                break  # may still be growing
            self._scanned = m.end()
            key = " ".join(_PLAIN.sub("", m.group(0)).split())
            starts = self._seen.setdefault(key, [])
            starts.append(m.start())
            if len(starts) >= self.repeats:
                return starts[1]  # keep the first time it was said
        return None


_SENTENCE = re.compile(r"[^.!?。\n]{20,}[.!?。]?")
_SENTENCE_END = re.compile(r"[.!?。\n]")
