"""Untrusted text made safe where it goes: the terminal, the LLM prompt, error messages.

Articles, file names, LLM replies and server error bodies are all written by someone else.
Three escapes keep them in their place:

- `terminal_text`: no escape sequence or control character reaches the screen (an article
  holding ``\\x1b[2J`` would clear it, an OSC sequence retitle the window or hide a link).
- `escape_block`: passage text cannot close the prompt's ``<passages>`` data block, in any
  case, spacing or Unicode look-alike form, nor smuggle in chat-template tokens or role lines.
- `redact`: API keys, bearer tokens and URL credentials never appear in a message.

The patterns are hand-written: each is a few lines, and the libraries that have them (rich's
ANSI decoder, the Unicode confusables table of UTS #39) either keep them private or bring far
more than the handful of characters needed here.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import unicodedata
from collections.abc import Iterable

from .errors import QueryTooLong, RagError

# A question or search query is at most this many characters. Real questions are far shorter
# (the longest of the 5,774 KorQuAD dev questions has 111); a pasted article is not a question,
# and a 100,000-character query took 85 s in morpheme analysis.
MAX_QUERY_CHARS = 2000

# --- the terminal ---------------------------------------------------------------------------

# ECMA-48: control strings (OSC, DCS, SOS, PM, APC) up to their terminator (BEL or ST), CSI
# sequences, then any other escape sequence (intermediate bytes and a final byte).
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b[ -/]*[0-~]"
)
# C0 controls but tab and newline, DEL, C1 controls, and the bidi embeddings, overrides and
# isolates that make text display in another order than it is stored (CVE-2021-42574), and
# lone surrogates (JSON may escape half a pair, "\ud800"), which no encoding can write.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def terminal_text(text: str) -> str:
    """``text`` without escape sequences and control characters (tab and newline stay)."""
    if text.isprintable() or _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))


def clean_field(value: str | None, limit: int = 300) -> str | None:
    """A one-line metadata value (title, outlet, reporter) as stored: no controls, runs of
    whitespace collapsed, at most ``limit`` characters; ``None`` when nothing is left."""
    if value is None:
        return None
    flat = " ".join(terminal_text(value).split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return flat or None


# --- the prompt ---------------------------------------------------------------------------

# Look-alikes that NFKC leaves alone: angle brackets, slashes, and the Cyrillic and Greek
# letters that pass for Latin ones.
_CONFUSABLES = str.maketrans(
    {
        **dict.fromkeys("‹〈〈⟨❮˂ᐸ", "<"),
        **dict.fromkeys("›〉〉⟩❯˃ᐳ", ">"),
        **dict.fromkeys("⁄∕⧸", "/"),
        **{c: "a" for c in "аɑα"},
        **{c: "e" for c in "еє"},
        **{c: "o" for c in "оοσ"},
        **{c: "p" for c in "рρ"},
        **{c: "c" for c in "с"},
        **{c: "s" for c in "ѕ"},
        **{c: "i" for c in "іι"},
        **{c: "g" for c in "ɡԍ"},
        **{c: "u" for c in "υ"},
        **{c: "n" for c in "ո"},
        **{c: "t" for c in "т"},
        **{c: "y" for c in "уγ"},
        **{c: "x" for c in "хχ"},
        **{c: "m" for c in "м"},
        **{c: "r" for c in "г"},
        **{c: "k" for c in "кκ"},
        **{c: "h" for c in "һ"},
        **{c: "d" for c in "ԁ"},
        **{c: "q" for c in "ԛ"},
    }
)
_ROLES = r"system|user|assistant|human|ai|developer|tool|instructions?|response|input|question"
# Chat-template control tokens that a server may parse as special tokens inside content:
# <|im_start|> and its kin (ChatML, Llama 3, Phi, Command R), Llama 2's [INST] and <<SYS>>,
# Mistral's [SYSTEM_PROMPT] and tool tokens, Gemma's <start_of_turn>, and </s>, <bos>, <eos>.
_TEMPLATE_TOKEN = (
    r"<\|[^<>|\s]{1,40}\|>|<<\s*/?\s*sys\s*>>"
    r"|\[\s*/?\s*(?:inst|system_prompt|available_tools|tool_calls|tool_results)\s*\]"
    r"|<\s*/?\s*(?:s|bos|eos|start_of_turn|end_of_turn)\s*>"
)
_ROLE_LINE = re.compile(
    rf"^[ \t>*_-]*(?:#{{1,6}}\s*(?:{_ROLES})\b|(?:{_ROLES})\s*:)", re.IGNORECASE | re.MULTILINE
)


def _tag_pattern(names: Iterable[str]) -> re.Pattern[str]:
    """Opening or closing tags of the block names, spaced or not, closed or not."""
    spaced = "|".join(r"\s*".join(map(re.escape, name.lower())) for name in names)
    tags = rf"<\s*/?\s*(?:{spaced})(?![a-z0-9])[^<>\n]{{0,40}}>?"
    return re.compile(rf"{tags}|{_TEMPLATE_TOKEN}")


_PASSAGES_TAG = _tag_pattern(["passages"])


def _skeleton(text: str) -> tuple[str, list[int]]:
    """``text`` folded for matching (NFKC, look-alikes, case; invisible format characters
    and combining marks dropped), and for each folded character the index of the original
    one it came from."""
    if text.isascii():
        return text.lower(), list(range(len(text)))
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch) in ("Cf", "Mn", "Me"):  # zero-width, bidi, combining marks
            continue
        folded = unicodedata.normalize("NFKC", ch.translate(_CONFUSABLES))
        for c in folded.translate(_CONFUSABLES).casefold():
            chars.append(c)
            origin.append(i)
    return "".join(chars), origin


def escape_block(text: str, names: Iterable[str] = ("passages",)) -> str:
    """Make ``text`` safe to place inside a ``<passages>``-style data block of a prompt.

    Every tag-like sequence of a block name (``</passages>``, ``</PASSAGES >``,
    ``< /passages>``, ``＜/passages＞``, Cyrillic look-alikes, zero-width characters inside)
    and every chat-template control token (``<|im_start|>``, ``[INST]``, ``<<SYS>>``, ``</s>``)
    gets its brackets written as ``&lt;``/``&gt;`` (``&#91;``/``&#93;``), so it reads as text;
    a line opening with a role marker (``SYSTEM:``, ``### Instruction``) gets a backslash in
    front, as in Markdown. Everything else is left exactly as it was.

    Args:
        text: Untrusted text (a passage, its title or metadata).
        names: The block names to protect.

    Returns:
        The escaped text.
    """
    names = tuple(names)
    pattern = _PASSAGES_TAG if names == ("passages",) else _tag_pattern(names)
    skeleton, origin = _skeleton(text)
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) in the original
    for m in pattern.finditer(skeleton):
        start, end = origin[m.start()], origin[m.end() - 1] + 1
        edits.append((start, end, _entities(text[start:end])))
    for m in _ROLE_LINE.finditer(skeleton):
        at = origin[m.start() + len(m.group()) - len(m.group().lstrip(" \t>*_-"))]
        if not any(a <= at < b for a, b, _ in edits):
            edits.append((at, at, "\\"))
    out = []
    last = 0
    for start, end, replacement in sorted(edits):
        if start < last:  # overlapping matches: the first one already escaped this part
            continue
        out.append(text[last:start])
        out.append(replacement)
        last = end
    out.append(text[last:])
    return "".join(out)


def _entities(tag: str) -> str:
    """Brackets and their look-alikes as HTML entities; the rest of the tag as written."""
    out = []
    for ch in tag:
        plain = unicodedata.normalize("NFKC", ch.translate(_CONFUSABLES)).translate(_CONFUSABLES)
        out.append(_ENTITY.get(plain, ch))
    return "".join(out)


_ENTITY = {"<": "&lt;", ">": "&gt;", "[": "&#91;", "]": "&#93;"}


# --- messages -----------------------------------------------------------------------------

_SECRET_PATTERNS = (
    # user:password@ in any URL
    (re.compile(r"([a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE), r"\1***@"),
    # OpenAI-style keys: sk-..., sk-proj-..., also in rk-/pk- form
    (re.compile(r"\b((?:sk|rk|pk)-)[A-Za-z0-9_-]{6,}"), r"\1***"),
    (re.compile(r"\b(Bearer\s+)[A-Za-z0-9._~+/=-]{6,}", re.IGNORECASE), r"\1***"),
    (
        re.compile(
            r"([?&](?:api[_-]?key|key|token|access_token|password)=)[^&\s#]+", re.IGNORECASE
        ),
        r"\1***",
    ),
)


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with API keys, bearer tokens, URL credentials and the given secret values
    replaced by ``***``.

    Args:
        text: A message about to be shown or raised.
        secrets: Values known to be secret (the configured API key); ones shorter than 6
            characters are not looked for, as they would match ordinary words.
    """
    for value in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        text = text.replace(value, "***")
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def configured_secrets() -> list[str | None]:
    """The API keys set in the environment (``$RAG_LLM_API_KEY``, ``$OPENAI_API_KEY``)."""
    return [os.environ.get(name) for name in ("RAG_LLM_API_KEY", "OPENAI_API_KEY")]


def safe_message(text: str, secrets: Iterable[str | None] = ()) -> str:
    """A message for the terminal: secrets redacted, controls removed."""
    return terminal_text(redact(text, secrets))


# --- queries ------------------------------------------------------------------------------


def check_query(text: str, what: str = "query") -> None:
    """Refuse a query longer than `MAX_QUERY_CHARS`, or one holding bytes that are not
    UTF-8 (a command-line argument or typed line keeps them as lone surrogates, on which
    Kiwi failed with a traceback).

    Raises:
        QueryTooLong: With the length and the limit.
        RagError: The query holds bytes that are not UTF-8.
    """
    if not isinstance(text, str):  # None failed in len(), bytes in a regular expression
        raise TypeError(f"the {what} must be a str, not {type(text).__name__}")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryTooLong(what, len(text), MAX_QUERY_CHARS)
    if not_text(text):
        raise RagError(f"the {what} holds bytes that are not UTF-8 text")


def not_text(text: str) -> bool:
    """Whether ``text`` holds lone surrogates: bytes that were not UTF-8."""
    return bool(_SURROGATE.search(text))


_SURROGATE = re.compile(r"[\ud800-\udfff]")


class _Warning(logging.Handler):
    """rag's logged warnings (a cache it cannot write) as ``warning: …`` lines on stderr, on
    a line of their own: Python's last-resort handler printed the bare message, glued onto
    the end of an answer being streamed."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = safe_message(record.getMessage(), configured_secrets())
            # On a terminal the answer may be mid-line; a pipe gets the line alone.
            start = "\n" if sys.stdout is not None and sys.stdout.isatty() else ""
            sys.stderr.write(f"{start}warning: {message}\n")
            sys.stderr.flush()
        except Exception:  # stderr closed (2>&-) or a broken pipe: never the command's end
            self.handleError(record)


def warnings_to_stderr() -> None:
    """Show rag's warnings as `_Warning` does (the command line; once per process)."""
    log = logging.getLogger("rag")
    if not any(isinstance(h, _Warning) for h in log.handlers):
        log.addHandler(_Warning(logging.WARNING))
