"""Korean text processing with Kiwi: sentence spans and content morphemes for BM25."""

from __future__ import annotations

import functools
import json
import os
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .memo import Memo

if TYPE_CHECKING:
    from kiwipiepy import Kiwi

    from .remote_kiwi import RemoteKiwi

# Morpheme tags kept for lexical search: nouns, numerals, verb/adjective stems, roots,
# foreign words, numbers and hanja. Particles, endings, affixes and punctuation are dropped.
# Chosen on KorQuAD 1.0 dev (benchmarks/bench_korquad.py; numbers in docs/benchmarks.md).
CONTENT_TAGS = frozenset(
    {"NNG", "NNP", "NNB", "NR", "NP", "VV", "VA", "XR", "SL", "SN", "SH", "W_HASHTAG"}
)

_lock = threading.Lock()


# Kiwi's multi-word dictionary ("쇼와 천황" as one proper noun) takes 195 MB of the 480 MB
# Kiwi uses. Without it, BM25 alone on KorQuAD 1.0 dev scores the same (R@1 0.903 either way,
# R@5 0.984 vs 0.985, paragraphs and questions analyzed alike); the index always split such
# entries into their words anyway. (docs/search-at-scale.md has the end-to-end numbers.)
KIWI_OPTIONS = {"load_multi_dict": False}
KIWI_DICTIONARIES = "without the multi-word dictionary"  # as the index manifest records it


@functools.cache
def kiwi() -> Kiwi | RemoteKiwi:
    """The shared Kiwi analyzer (loading it takes about a second): in `rag ask` and `rag
    chat`, the one a child process loaded (`rag.remote_kiwi`), else this process's own."""
    from . import remote_kiwi

    return remote_kiwi.started or load_kiwi()


def load_kiwi() -> Kiwi:
    """A new Kiwi analyzer with the package's options."""
    from kiwipiepy import Kiwi

    return Kiwi(**KIWI_OPTIONS)


# Kiwi's time grows faster than linearly with the length of one input (issue 10's probe: one
# 80,000-character line took 4.9 s to split into sentences, 160,000 took 19.4 s), inside one
# C call that Ctrl-C cannot interrupt. Text longer than this is analyzed in windows of at
# most this many characters, each cut after a sentence end or at a space near its end, so
# sentences are only cut where a line has no break for hundreds of characters. Scraped
# article lines (the seeds' longest: 634) and KorQuAD dev paragraphs (longest: 2,946) go to
# Kiwi whole, as before; a window of the slowest text measured ("가" repeated) takes about a
# second.
WINDOW_CHARS = 3000
_LOOK_BACK = 500  # how far before a window's end to look for a place to cut
_SENTENCE_BREAK = re.compile(r"[.!?。？！…][\"'”’)\]]*\s+")
_SPACE = re.compile(r"\s+")


def windows(text: str, size: int = WINDOW_CHARS) -> list[tuple[int, int]]:
    """Spans of ``text``, in order and covering it, none longer than ``size`` characters.

    Each cut is after the last sentence end followed by whitespace in the last ``_LOOK_BACK``
    characters of a window, else after its last whitespace, else at the limit.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    while len(text) - start > size:
        limit = start + size
        low = max(start + 1, limit - _LOOK_BACK)
        cut = limit
        for pattern in (_SENTENCE_BREAK, _SPACE):
            ends = [m.end() for m in pattern.finditer(text, low, limit)]
            if ends:
                cut = ends[-1]
                break
        spans.append((start, cut))
        start = cut
    spans.append((start, len(text)))
    return spans


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``, never crossing a line break.

    Kiwi finds Korean sentence ends ("...했다" without a period, quotes, "다." inside
    numbers) that a period splitter gets wrong; lines are split first because scraped
    articles put headings and captions on their own lines without punctuation, and a line
    longer than `WINDOW_CHARS` is split in `windows`.
    """
    spans: list[tuple[int, int]] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        for a, b in windows(line):
            part = line[a:b]
            stripped = part.strip()
            if not stripped:
                continue
            base = offset + a + (len(part) - len(part.lstrip()))
            with _lock:
                sents = kiwi().split_into_sents(stripped)
            for s in sents:
                start, end = base + s.start, base + s.end
                while end > start and text[end - 1].isspace():
                    end -= 1
                if end > start:
                    spans.append((start, end))
        offset += len(line)
    return spans


@functools.lru_cache(maxsize=1024)
def passage_sentences(text: str) -> tuple[tuple[int, int], ...]:
    """`sentence_spans` of a retrieved passage, cached: the refusal gate, the answerer and
    the context fitting each split the same passages."""
    return tuple(sentence_spans(text))


def morphemes(text: str) -> list[str]:
    """Content morphemes of ``text`` for BM25 (Latin lowercased)."""
    return morphemes_batch([text])[0]


def query_morphemes(query: str) -> list[str]:
    """`morphemes` of a search query: with the shared `kiwi`, unless `one_query` announced
    this query and the shared Kiwi is not loaded; then with `query_kiwi`, which builds in
    about 0.5 s less, in the child process `one_query` or `search_early` started if it
    could."""
    global _one_query
    announced, _one_query = _one_query, None
    if announced is None or announced.query != query or kiwi.cache_info().currsize:
        return morphemes(query)
    if announced.child is not None:
        terms = announced.child.result(query)
        if terms is not None:
            return terms
    analyzer = query_kiwi([query])
    return morphemes(query) if analyzer is None else _content(analyzer.tokenize(query))


def analyzed_aside(query: str) -> bool:
    """Whether a child process is analyzing ``query`` (`one_query`): the caller may embed it
    meanwhile, before it asks for its morphemes."""
    return _one_query is not None and _one_query.query == query and _one_query.child is not None


def one_query(query: str) -> None:
    """Say that this process analyzes ``query`` as a search query and no other text (the
    `rag search` command). It is then analyzed without loading the shared `kiwi` (see
    `query_kiwi`), and where the process can fork, in a child process: the one
    `search_early` started if it was given this query, else one started now. Kiwi holds the
    GIL while it loads, so only another process can load it while this one opens the index
    and embeds the query. A process that goes on searching or answering is better off
    loading the shared Kiwi once, as it does by default."""
    global _one_query, _early
    child, _early = _early, None
    if child is not None and query not in child.texts:
        child = None
    if (
        child is None
        and hasattr(os, "fork")
        and threading.active_count() == 1  # no thread holds a lock the child would need
        and not kiwi.cache_info().currsize  # its worker threads would not exist in the child
        and len(query) <= WINDOW_CHARS
    ):
        child = _Aside([query])
    _one_query = _Announced(query, child)


def search_early(args: Sequence[str]) -> None:
    """For the command line ``rag search QUERY [OPTIONS]`` (``args`` without the program):
    start analyzing the query in a child process before the command's modules load, 0.25 s
    sooner than `one_query` could. Which argument is the query is for the command's parser to
    say, so the child analyzes every one that may be; `one_query` takes the query's terms."""
    global _early
    options = " ".join(args)
    candidates = [a for a in args[1:] if a.strip() and not a.startswith("-")]
    if (
        args[:1] != ["search"]
        or not hasattr(os, "fork")
        or threading.active_count() > 1
        or "--help" in args
        or re.search(r"--fusion[= ]dense\b", options)  # no BM25: nothing to analyze
        or not candidates
        or sum(map(len, candidates)) > WINDOW_CHARS
    ):
        return
    _early = _Aside(candidates)


class _Aside:
    """`query_morphemes` of a few texts, computed by a forked child and sent through a pipe."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: analyze, send, leave without running any cleanup
            status = 1
            try:
                os.close(read)
                from .remote_kiwi import detach

                detach()
                analyzer = query_kiwi(texts)
                if analyzer is not None:
                    terms = [_content(t) for t in analyzer.tokenize(texts)]
                    with os.fdopen(write, "wb") as pipe:
                        pipe.write(json.dumps(terms).encode())
                    status = 0
            finally:
                os._exit(status)
        os.close(write)
        self._read = read

    def result(self, text: str) -> list[str] | None:
        """The terms of ``text`` (one of `texts`), or ``None`` if the child failed (the
        caller analyzes the query)."""
        with os.fdopen(self._read, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(self.pid, 0)
        if status != 0 or not data:
            return None
        terms: list[list[str]] = json.loads(data)
        return terms[self.texts.index(text)]


class _Announced(NamedTuple):
    query: str
    child: _Aside | None


_one_query: _Announced | None = None
_early: _Aside | None = None


def query_kiwi(texts: Sequence[str]) -> Kiwi | None:
    """A Kiwi that analyzes ``texts`` exactly as `kiwi` does, built with only the entries of
    the default dictionary that can occur in them, and with the typo dictionary only if one
    of its forms does; ``None`` if that dictionary holds an entry of a kind this does not
    expect.

    The dictionary is 113,236 proper nouns (NNP) and a dozen pre-analyzed verb endings. A noun
    can only be read where its form is written, give or take a final consonant split off as
    a particle ("카카온" is 카카오 + ㄴ), so every noun kept here has all but its last
    syllable in a text, followed by a syllable with the same initial and vowel. Checked on
    KorQuAD 1.0 dev: the same tokens for all 5,774 questions (`benchmarks/bench_cold.py
    --check-tokens`).
    """
    from kiwipiepy import Kiwi
    from kiwipiepy_model import get_model_path

    dictionary = (Path(get_model_path()) / "default.dict").read_text(encoding="utf-8")
    wanted = {v for t in texts for v in (t, unicodedata.normalize("NFKC", t).lower())}
    # A cheap first pass over the 3 MB file before `_may_occur`: a noun of three or more
    # characters starts with two written ones, one of two with a written one and one of the
    # same open syllable as the next, one of one with one of the same open syllable.
    starts = set()
    for text in wanted:
        for i, ch in enumerate(text):
            starts.add(_syllables_like(ch))
            if i + 1 < len(text):
                starts.add(re.escape(text[i : i + 2]) + "[^\t\n]+")
                starts.add(re.escape(ch) + _syllables_like(text[i + 1]))
    first = re.compile(rf"^((?:{'|'.join(sorted(starts))}))\tNNP\t([^\t\n]+)$", re.M | re.I)
    nouns = [(m[1], float(m[2])) for m in first.finditer(dictionary) if _may_occur(m[1], wanted)]
    analyzed: list[tuple[str, list[tuple[str, ...]], float]] = []
    for line in re.findall(r"^[^#\n][^\t\n]*\t(?!NNP\t)[^\n]*$", dictionary, re.M):
        fields = line.split("\t")
        if len(fields) not in (2, 3) or "/" not in fields[1]:
            return None  # an entry of a kind this does not know: use the shared Kiwi
        morphs = [tuple(m.rsplit("/", 1)) for m in fields[1].split(" + ")]
        score = float(fields[2]) if len(fields) == 3 else 0.0
        analyzed.append((fields[0], morphs, score))
    # Kiwi's typo dictionary (variant endings such as 엇 for 었) costs 0.07 s of its 0.8 s
    # to load and build; an entry can only be read where its form is written.
    typos = (Path(get_model_path()) / "typo.dict").read_text(encoding="utf-8")
    written = [unicodedata.normalize("NFD", t) for t in wanted]
    forms = re.findall(r"^([^#\s][^\t\n]*?)\$?\t", typos, re.M)
    needed = any(unicodedata.normalize("NFD", f) in t for f in forms for t in written)
    analyzer = Kiwi(**KIWI_OPTIONS, load_default_dict=False, load_typo_dict=needed)
    for form, score in nouns:
        analyzer.add_user_word(form, "NNP", score)
    for form, morphs, score in analyzed:
        analyzer.add_pre_analyzed_word(form, morphs, score)
    return analyzer


def _may_occur(form: str, texts: Iterable[str]) -> bool:
    """Whether a dictionary noun could be read in one of ``texts`` (see `query_kiwi`)."""
    for variant in {form, unicodedata.normalize("NFKC", form).lower()}:
        head, last = variant[:-1], _open_syllable(variant[-1])
        for text in texts:
            at = text.find(head)
            while at >= 0:
                after = at + len(head)
                if after < len(text) and _open_syllable(text[after]) == last:
                    return True
                at = text.find(head, at + 1)
    return False


def _syllables_like(ch: str) -> str:
    """A regex class of the syllables with the open syllable of ``ch`` ("오": 오, 옥, 온...)."""
    if not _is_syllable(ch):
        return re.escape(ch)
    base = ord(_open_syllable(ch))
    return f"[{chr(base)}-{chr(base + 27)}]"


def _is_syllable(ch: str) -> bool:
    return 0xAC00 <= ord(ch) < 0xAC00 + 11172


def _open_syllable(ch: str) -> str:
    """A Hangul syllable without its final consonant ("온" -> "오"); other characters as is."""
    return chr(0xAC00 + (ord(ch) - 0xAC00) // 28 * 28) if _is_syllable(ch) else ch


def morphemes_batch(texts: Sequence[str]) -> list[list[str]]:
    """`morphemes` for many texts at once (Kiwi analyzes a batch faster).

    A text longer than `WINDOW_CHARS` is analyzed in `windows`, so no single Kiwi call runs
    long and Ctrl-C is seen between them.
    """
    pieces: list[str] = []
    owners: list[int] = []
    for i, text in enumerate(texts):
        for a, b in windows(text):
            pieces.append(text[a:b])
            owners.append(i)
    out: list[list[str]] = [[] for _ in texts]
    with _lock:
        analyzed: Iterable = kiwi().tokenize(pieces)
        for owner, tokens in zip(owners, analyzed, strict=True):
            out[owner].extend(_content(tokens))
    return out


@functools.cache
def english_stopwords() -> frozenset[str]:
    """bm25s's English stopwords (``STOPWORDS_EN_PLUS``). Its `bm25s.stopwords` module is
    plain data, read here without importing the bm25s package, which imports scipy: 0.2 s of
    a cold `rag ask`, and of a cold `rag search` in English."""
    import importlib.util

    package = importlib.util.find_spec("bm25s")  # locates it; imports nothing
    if package is None or package.origin is None:
        raise ImportError("bm25s is not installed")
    file = Path(package.origin).with_name("stopwords.py")
    spec = importlib.util.spec_from_file_location("rag._bm25s_stopwords", file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot read {file}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frozenset(module.STOPWORDS_EN_PLUS)


def _content(tokens: Iterable) -> list[str]:
    out = []
    for t in tokens:
        tag = t.tag.split("-")[0]  # "VV-R" / "VA-I": regular/irregular conjugation marks
        if tag == "SL":
            # English function words ("the", "of") occur in a few Korean articles; as query
            # terms they would match those articles for every English question.
            word = t.form.lower()
            if word not in english_stopwords():
                out.append(word)
        elif tag in CONTENT_TAGS:
            # Multi-word dictionary entries ("쇼와 천황") are one token with a space: index
            # and query both take its words, as the space-joined terms column always did.
            out.extend(t.form.split())
    return out


def genitive_stem(term: str, count: Callable[[str], int]) -> str:
    """``term`` without the genitive 의 Kiwi read into it ("플리토의" for 플리토 + 의: a name its
    dictionary lacks) where ``count`` (chunks holding a term) is larger without 의 than with
    it; else ``term`` as it is (국가안전보장회의 is one word: no chunk holds 국가안전보장회)."""
    if len(term) >= 3 and term.endswith("의") and count(term[:-1]) > count(term):
        return term[:-1]
    return term


# A one-syllable particle after a name takes the form its last syllable calls for.
_PARTICLES = {"이": "가", "은": "는", "을": "를", "과": "와"}


def with_particle(name: str, rest: str) -> str:
    """``rest`` (what follows a name just put in another's place) with a particle that fits
    ``name``: 김영삼이 but 김영하가, 플리토는 but 카카오브레인은; a Latin name takes the
    form after a vowel."""
    pairs = _PARTICLES | {v: k for k, v in _PARTICLES.items()}
    if not rest or rest[0] not in pairs or (len(rest) > 1 and "가" <= rest[1] <= "힣"):
        return rest
    closed = "가" <= name[-1] <= "힣" and (ord(name[-1]) - 0xAC00) % 28 != 0
    fits = rest[0] if (rest[0] in _PARTICLES) == closed else pairs[rest[0]]
    return fits + rest[1:]


def entity_phrases(text: str) -> list[str]:
    """Names in ``text`` as written: proper nouns ("카카오엔터프라이즈") and capitalized
    foreign words ("Kakao Enterprise"), adjacent pieces joined."""
    [tokens] = tagged([text])
    spans: list[list[int]] = []
    for t in tokens:
        name = t.tag == "NNP" or (
            t.tag == "SL" and t.form[:1].isupper() and t.form.lower() not in english_stopwords()
        )
        if not name:
            continue
        if spans and t.start - spans[-1][1] <= (1 if t.tag == "SL" else 0):
            spans[-1][1] = t.start + t.len
        else:
            spans.append([t.start, t.start + t.len])
    return [text[a:b] for a, b in spans]


class Token(NamedTuple):
    """A Kiwi morpheme: its form, tag (without the conjugation mark) and character span."""

    form: str
    tag: str
    start: int
    end: int

    @property
    def len(self) -> int:
        """Its length in characters, as Kiwi's own tokens give it."""
        return self.end - self.start


def tagged_batch(texts: Sequence[str]) -> list[list[Token]]:
    """Every morpheme of each text with its tag, for checks that need the tags (answerability)."""
    with _lock:
        analyzed: Iterable = kiwi().tokenize(list(texts))
        return [
            [Token(t.form, t.tag.split("-")[0], t.start, t.start + t.len) for t in tokens]
            for tokens in analyzed
        ]


_TAGGED: Memo[str, list[Token]] = Memo(size=50_000)


def tagged(texts: Sequence[str]) -> list[list[Token]]:
    """`tagged_batch`, each text analyzed once per process (`rag.memo`)."""
    return _TAGGED.get(texts, tagged_batch)
