"""`rag index --ray ADDRESS`: the compute of `Index.add` as Ray Data stages on a cluster.

Three passes run on the cluster, each spread over all of its CPUs:

- **read**: one task per file: reading, decoding and cleaning (`rag.ingest`);
- **chunk**: chunking and Kiwi morphemes, a batch of articles at a time
  (`rag.update.chunk_articles`), in actors holding the embedder's tokenizer;
- **embed**: a pool of actors, one per CPU, each holding the index's embedder (the default
  ``onnx-int8``) on one thread.

Between the passes the driver does what needs the whole index: it decides which articles are
new or changed (`rag.update.plan`, by content hash) and which chunk texts already have a
vector (`rag.update.embed`); only the rest goes to the cluster. Texts are sent in the batches
`Embedder.embed_passages` would form, so the vectors are the ones a local run computes. The
results go to the same `rag.store.write`, under the same lock, with the same atomic switch.

Joining the cluster (or starting one here) is `rag.cluster`. Ray is imported only then.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import ingest, update
from .cluster import join
from .db import ChunkRecord, DocRecord
from .embed import PASSAGE_BATCH, Embedder
from .errors import RagError
from .records import Article, IndexReport, Skipped
from .update import Progress, Source

log = logging.getLogger(__name__)

# Articles per call of the chunk stage (Kiwi analyzes a batch faster than one text at a time).
CHUNK_BATCH = 8
# CPUs one actor asks for. A little under one, so that a full pool never takes every CPU of a
# node: Ray Data can stall on small clusters when nothing is left for its own tasks.
ACTOR_CPUS = 0.9
_ONNX = ("onnx", "onnx-int8")


@dataclass
class Stage:
    """One pass over the cluster: items sent, wall seconds, and the CPU seconds the workers
    spent on them (unlike their wall time, not inflated by other processes on the cores)."""

    items: int = 0
    seconds: float = 0.0
    cpu: float = 0.0


@dataclass
class Cluster:
    """The Ray cluster an add runs on, and what each pass took."""

    address: str
    nodes: int
    cpus: int
    stages: dict[str, Stage] = field(default_factory=dict)

    def collect(
        self, inputs: Iterable[Source] | Source, report: IndexReport, progress: Progress | None
    ) -> list[Article]:
        """`rag.update.collect` with the files read and cleaned on the cluster."""
        paths, records = update.split_inputs(inputs)
        listed = list(ingest.iter_files(paths))
        files = [item for item in listed if isinstance(item, Path)]
        payloads = [os.fsencode(str(p)) for p in files]
        loaded = iter(self._map("read", _read_files, payloads, 1, progress))
        results: list[Article | Skipped] = []
        for item in listed:
            if isinstance(item, Skipped):
                results.append(item)
                continue
            for entry in _loads(next(loaded)):
                kind = Article if "content_hash" in entry else Skipped
                results.append(kind.model_validate(entry))
        results.extend(ingest.articles_from_records(records))
        return update.keep_articles(results, report)

    def prepare(
        self,
        plan: list[tuple[Article, str]],
        embedder: Embedder,
        chunker: dict[str, Any],
        progress: Progress | None,
    ) -> tuple[list[DocRecord], list[ChunkRecord], list[str]]:
        """`rag.update.prepare` with the articles chunked on the cluster."""
        payloads = [
            _dumps({"article": a.model_dump(mode="json"), "doc_id": doc_id}) for a, doc_id in plan
        ]
        args = (embedder.spec, chunker)
        pieces = []
        for payload in self._map("chunk", _Chunker, payloads, CHUNK_BATCH, progress, args):
            data = _loads(payload)
            pieces.append(([ChunkRecord(**c) for c in data["chunks"]], data["texts"]))
        return update.assemble(plan, pieces)

    def encoder(self, embedder: Embedder, recorded: dict[str, Any]) -> update.Encode:
        """Embeds passages on the cluster exactly as ``embedder.embed_passages`` would."""

        def encode(texts: list[str], *, progress: Callable[[int], None]) -> np.ndarray:
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            batches = [order[s : s + PASSAGE_BATCH] for s in range(0, len(order), PASSAGE_BATCH)]
            payloads = [_dumps([texts[i] for i in rows]) for rows in batches]
            out = np.empty((len(texts), embedder.dim), dtype=np.float32)
            args = (embedder.spec, recorded)
            vectors = self._map(
                "embed", _Embedder, payloads, 1, None, args, lambda i: progress(len(batches[i]))
            )
            for rows, raw in zip(batches, vectors, strict=True):
                out[rows] = np.frombuffer(raw, dtype=np.float32).reshape(len(rows), -1)
            return out

        return encode

    def _map(
        self,
        stage: str,
        fn: Any,
        payloads: list[bytes],
        batch_size: int,
        progress: Progress | None,
        actor_args: tuple[Any, ...] | None = None,
        finished: Callable[[int], None] | None = None,
    ) -> list[bytes]:
        """Run ``fn`` over ``payloads`` as one Ray Data pass (in actors built with
        ``actor_args``, else tasks); its outputs, in input order. ``finished(i)`` is called as
        payload i's output arrives."""
        if not payloads:
            return []
        import ray
        import ray.data

        started = time.perf_counter()
        rows = [{"seq": i, "payload": p} for i, p in enumerate(payloads)]
        ds: Any = ray.data.from_items(rows, override_num_blocks=min(len(rows), 4 * self.cpus))
        if actor_args is None:
            ds = ds.map_batches(fn, batch_size=batch_size, batch_format="numpy")
        else:
            calls = -(-len(payloads) // batch_size)
            pool = ray.data.ActorPoolStrategy(size=max(1, min(self.cpus, calls)))
            ds = ds.map_batches(
                fn,
                fn_constructor_args=actor_args,
                batch_size=batch_size,
                batch_format="numpy",
                compute=pool,
                num_cpus=ACTOR_CPUS,
                max_restarts=0,  # a lost actor fails the run (nothing is written); rerun it
            )
        out: list[bytes | None] = [None] * len(payloads)
        done, cpu = 0, 0.0
        if progress:
            progress(stage, 0, len(payloads))
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for seq, payload, seconds in zip(
                    batch["seq"], batch["payload"], batch["seconds"], strict=True
                ):
                    out[int(seq)] = bytes(payload)
                    cpu += float(seconds)
                    done += 1
                    if progress:
                        progress(stage, done, len(payloads))
                    if finished:
                        finished(int(seq))
        except ray.exceptions.RayError as e:
            raise _cluster_error(stage, e) from None
        self.stages[stage] = Stage(len(payloads), time.perf_counter() - started, cpu)
        log.info(
            "ray %s: %d items in %.1f s (workers' CPU %.1f s)",
            stage,
            len(payloads),
            self.stages[stage].seconds,
            cpu,
        )
        results = [p for p in out if p is not None]
        if len(results) != len(payloads):
            raise RagError(f"the Ray {stage} stage returned {len(results)} of {len(payloads)}")
        return results


@contextlib.contextmanager
def connect(address: str, progress: Progress | None = None) -> Iterator[Cluster]:
    """The Ray cluster at ``address`` (see `rag.cluster`), for the block."""
    with join(address, progress) as (nodes, cpus):
        yield Cluster(address, nodes, cpus)


def _cluster_error(stage: str, error: Exception) -> RagError:
    """The `RagError` a worker raised (a missing model, a mismatched one), else one line."""
    cause: BaseException | None = error
    for _ in range(10):  # Ray wraps a worker's exception a few levels deep
        if cause is None or isinstance(cause, RagError):
            break
        cause = getattr(cause, "cause", None) or cause.__cause__
    if isinstance(cause, RagError):
        return RagError(f"on a Ray worker: {cause}")
    lines = [line for line in str(error).splitlines() if line.strip()]
    return RagError(f"the Ray {stage} stage failed: {lines[-1] if lines else type(error).__name__}")


# -- what runs on the workers -------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    # surrogatepass: a file name that is not UTF-8 arrives as a str with surrogate escapes.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _loads(payload: bytes) -> Any:
    return json.loads(bytes(payload).decode("utf-8", "surrogatepass"))


def _embedder(spec: str, recorded: dict[str, Any] | None = None) -> Embedder:
    """The embedder ``spec`` on one thread (one per CPU), checked against ``recorded``."""
    from .backends import get_embedder, prefix_options

    options = {"threads": 1} if spec.split(":")[0] in _ONNX else {}
    if recorded is not None:
        options.update(prefix_options(recorded))
    embedder = get_embedder(spec, **options)
    if recorded is not None:
        embedder.check_compatible(recorded)
    return embedder


def _read_files(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    payloads, seconds = [], []
    for raw in batch["payload"]:
        started = time.process_time()
        results = ingest.load([os.fsdecode(bytes(raw))])
        payloads.append(_dumps([r.model_dump(mode="json") for r in results]))
        seconds.append(time.process_time() - started)
    return {"seq": batch["seq"], "payload": payloads, "seconds": seconds}


class _Chunker:
    def __init__(self, spec: str, chunker: dict[str, Any]) -> None:
        from .korean import morphemes_batch

        self.embedder = _embedder(spec)
        self.chunker = chunker
        morphemes_batch(["준비"])  # load Kiwi now, not in the first batch

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        started = time.process_time()
        plan = []
        for raw in batch["payload"]:
            data = _loads(raw)
            plan.append((Article.model_validate(data["article"]), data["doc_id"]))
        pieces = update.chunk_articles(plan, self.embedder.count_tokens, self.chunker)
        payloads = [
            _dumps({"chunks": [c.model_dump() for c in records], "texts": texts})
            for records, texts in pieces
        ]
        each = (time.process_time() - started) / len(plan)
        return {"seq": batch["seq"], "payload": payloads, "seconds": [each] * len(plan)}


class _Embedder:
    def __init__(self, spec: str, recorded: dict[str, Any]) -> None:
        self.embedder = _embedder(spec, recorded)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        payloads, seconds = [], []
        for raw in batch["payload"]:
            started = time.process_time()
            vectors = self.embedder.embed_passages(_loads(raw))
            payloads.append(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
            seconds.append(time.process_time() - started)
        return {"seq": batch["seq"], "payload": payloads, "seconds": seconds}
