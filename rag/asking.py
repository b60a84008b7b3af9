"""`Asking`, the part of `Index` that answers: retrieve with `Index.search`, then answer
from the passages found (`rag.answer.answer_stream`), which never sees the index itself."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import config

if TYPE_CHECKING:
    from .answer import Answer, AnswerStream
    from .answerable import Stats
    from .embed import Embedder
    from .generate import Generator
    from .records import Hit
    from .support import JudgeFn


class Asking:
    """`Index.ask`, `Index.ask_stream` and `Index.answerer`; `Index` inherits them."""

    if TYPE_CHECKING:  # what `Index` provides
        search: Callable[..., list[Hit]]
        document_frequencies: Stats

        @property
        def embedder(self) -> Embedder: ...

    def ask(
        self,
        question: str,
        k: int = 5,
        since: dt.date | str | None = None,
        until: dt.date | str | None = None,
        source: str | None = None,
        answerer: str | Generator | None = None,
        fusion: str = config.DEFAULT_FUSION,
        bm25_weight: float = config.DEFAULT_BM25_WEIGHT,
        judge: bool | JudgeFn = False,
        **llm_options: Any,
    ) -> Answer:
        """Answer ``question`` from the indexed articles, citing passages as [n].

        Args:
            question: In Korean or another language; the answer uses the same language.
            k: Passages retrieved and shown to the answerer.
            since: Only articles dated on or after this day.
            until: Only articles dated on or before this day.
            source: Only articles from this outlet.
            answerer: ``extractive`` (offline), ``openai``, a `Generator`, or ``None`` for
                the configured one (see `rag.generate.llm_name`).
            fusion: Retrieval fusion, as for `search`.
            bm25_weight: BM25's weight in the ``convex`` fusion.
            judge: Let the answering LLM judge the claims the support rules cannot settle
                (`rag.judge.Judge`, cached on disk); or a judge callable. Ignored for the
                extractive answerer, which only quotes.
            **llm_options: For ``openai``: ``model``, ``base_url``, ``api_key``, ``timeout``.

        Returns:
            The `Answer`, with ``refused=True`` when the articles do not contain the answer.

        Raises:
            LLMError: The language model failed (unreachable, timeout, bad key, ...).
        """
        return self.ask_stream(
            question, k, since, until, source, answerer, fusion, bm25_weight, judge, **llm_options
        ).result()

    def ask_stream(
        self,
        question: str,
        k: int = 5,
        since: dt.date | str | None = None,
        until: dt.date | str | None = None,
        source: str | None = None,
        answerer: str | Generator | None = None,
        fusion: str = config.DEFAULT_FUSION,
        bm25_weight: float = config.DEFAULT_BM25_WEIGHT,
        judge: bool | JudgeFn = False,
        **llm_options: Any,
    ) -> AnswerStream:
        """Like `ask`, but iterate the result for the text as it is generated, then read
        its ``.answer``."""
        from .answer import answer_stream

        generator = self.answerer(answerer, llm_options)
        judge_fn = None
        if callable(judge):
            judge_fn = judge
        elif judge and generator.name != "extractive":  # it quotes: nothing to judge
            from .judge import Judge

            judge_fn = Judge(generator)
        started = time.perf_counter()
        prefetch = self._prefetch(question, k, since, until, source)
        hits = self.search(question, k, since, until, source, fusion, bm25_weight)
        if prefetch is not None:
            prefetch.join()
        seconds = time.perf_counter() - started
        return answer_stream(
            question, hits, generator, self.embedder, seconds, self.document_frequencies, judge_fn
        )

    def _prefetch(
        self,
        question: str,
        k: int,
        since: dt.date | str | None,
        until: dt.date | str | None,
        source: str | None,
    ) -> threading.Thread | None:
        """While the Kiwi child still loads (`rag.remote_kiwi`: a `rag ask`, a chat's first
        question), the search waits for it to analyze the question. Meanwhile a thread
        embeds the sentences of the passages dense search ranks first, which are mostly the
        ones shown, for the answer to read (`rag.support.prefetch_sentences`). It never
        analyzes with Kiwi (the child's pipe serves one thread); its failure only means the
        answer embeds them itself."""
        from . import remote_kiwi
        from .support import prefetch_sentences

        child = remote_kiwi.started
        if child is None or child.ready:
            return None

        def run() -> None:
            with contextlib.suppress(Exception):
                hits = self.search(question, k, since, until, source, fusion="dense")
                prefetch_sentences(self.embedder, [h.text for h in hits])

        thread = threading.Thread(target=run, name="rag-prefetch", daemon=True)
        thread.start()
        return thread

    def answerer(
        self, name: str | Generator | None = None, options: dict[str, Any] | None = None
    ) -> Generator:
        """The generator `ask` would use for ``name`` (see `rag.generate.llm_name`)."""
        from .backends import get_generator
        from .generate import Generator, llm_name

        if isinstance(name, Generator):
            return name
        if llm_name(name) == "extractive":
            return get_generator("extractive", embedder=self.embedder)
        return get_generator(name, **(options or {}))
