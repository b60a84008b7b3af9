"""An optional LLM judge for the claims the support rules cannot settle.

RAGAS-style faithfulness, one claim at a time: the model is shown the sentence window that
supports a claim by meaning only (no rule found it wrong, too few of its words are in the
window to confirm it) and answers yes or no. Off by default; `Index.ask(..., judge=True)`
or ``rag ask --judge`` turns it on when an LLM is configured.

Cost: one short, non-streamed request per unsettled claim; the prompt is the template in
``prompts/judge.txt`` (about 600 characters) plus the claim and a window of three sentences,
so typically 250-450 tokens in and one token out (docs/answers.md, "LLM judge", has the
measured numbers). Verdicts are cached on disk, keyed by model, claim and window, so
re-asking a question costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

from . import config
from .errors import LLMError
from .generate import Generator
from .reply import strip_reasoning
from .templates import render

log = logging.getLogger(__name__)

_YES = re.compile(r"^\W*(?:yes|예|네|그렇다)\b", re.IGNORECASE)
_NO = re.compile(r"^\W*(?:no|아니오|아니요|아니다)\b", re.IGNORECASE)


def default_cache_dir() -> Path:
    """``$RAG_CACHE_DIR/judge``, else ``~/.cache/rag/judge``."""
    return config.cache_dir() / "judge"


class Judge:
    """Asks ``generator`` whether a claim is entailed by a window; callable as
    ``judge(claim, window) -> True | False | None`` (``None``: no usable verdict, the
    rules' verdict stands).

    Args:
        generator: Any chat `Generator` (the openai backend, a LangChain model, a fake).
        cache_dir: Where verdicts are kept (default `default_cache_dir`); ``None`` with
            ``cache=False`` keeps nothing.
        cache: Whether to read and write the on-disk cache.
    """

    def __init__(
        self, generator: Generator, cache_dir: Path | None = None, cache: bool = True
    ) -> None:
        self.generator = generator
        self.model = str(getattr(generator, "model", generator.name))
        self.cache_dir = (cache_dir or default_cache_dir()) if cache else None
        self.requests = 0  # requests actually sent (cache misses), for cost accounting

    def prompt(self, claim: str, window: str) -> str:
        """The user message sent for one claim (the passage cannot close its block)."""
        return render("judge", claim=claim, window=window.replace("</passage>", "</ passage>"))

    def __call__(self, claim: str, window: str) -> bool | None:
        key = hashlib.sha256(f"{self.model}\n{claim}\n{window}".encode()).hexdigest()
        cached = self._read(key)
        if cached is not None:
            return cached
        try:
            self.requests += 1
            reply = self.generator.generate(
                [{"role": "user", "content": self.prompt(claim, window)}]
            )
        except LLMError as e:
            log.warning("the judge could not ask %s: %s", self.model, e)
            return None
        reply = strip_reasoning(reply).strip()  # a thinking model's <think> comes first
        verdict = True if _YES.match(reply) else False if _NO.match(reply) else None
        if verdict is None:
            log.warning("the judge's reply is neither yes nor no: %.60r", reply)
            return None
        self._write(key, verdict, claim)
        return verdict

    def _path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.json" if self.cache_dir else None

    def _read(self, key: str) -> bool | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            verdict = json.loads(path.read_text(encoding="utf-8"))["entailed"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return None  # a damaged entry is asked again and rewritten
        return verdict if isinstance(verdict, bool) else None  # "false" is no True

    def _write(self, key: str, verdict: bool, claim: str) -> None:
        path = self._path(key)
        if path is None:
            return
        record = {"model": self.model, "claim": claim, "entailed": verdict}
        try:
            config.write_cached(path, json.dumps(record, ensure_ascii=False))
        except OSError as e:  # a read-only cache only costs requests
            log.warning("cannot write the judge cache at %s: %s", path, e)
