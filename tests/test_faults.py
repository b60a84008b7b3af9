"""Fault injection: `rag index` killed at random points, full and read-only file systems,
readers racing writers. After every fault the index must open, pass `rag info --check`, and
hold the previous or the new documents, never anything else.

Randomness is seeded (``RAG_FAULT_SEED``, default 10), so a failure replays. The full-disk
and read-only tests mount a small tmpfs and need root; without it they inject the errors
(``ENOSPC``, ``EROFS``) where the writes happen instead (``RAG_FAULT_NO_MOUNT=1`` forces that).
"""

from __future__ import annotations

import errno
import gc
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rag import Index, diskio, store
from rag.backends import register_backend
from rag.cli import app
from rag.errors import IndexWriteError
from tests.conftest import ROOT, FakeEmbedder, default_sigint

SEED = int(os.environ.get("RAG_FAULT_SEED", "10"))
BATCH = 20  # records per write


def _batch(k: int, n: int = BATCH) -> list[dict[str, Any]]:
    """``n`` distinct records for write ``k``."""
    return [
        {
            "id": f"r{k}-{i}",
            "title": f"반도체 수출 {k}-{i}",
            "text": f"반도체 수출이 {k}월에 {i}% 늘었다. 삼성전자의 {k}분기 실적 {i}조 원이다.",
        }
        for i in range(n)
    ]


def _jsonl(folder: Path, k: int) -> Path:
    file = folder / f"batch-{k}.jsonl"
    file.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in _batch(k)))
    return file


def _documents(path: Path) -> int:
    """Open the index as a user would, search it, verify every checksum; its document count."""
    index = Index.open(path)
    assert index.search("반도체 수출", k=3), "an index with documents finds them"
    _, problems = index.check()
    assert problems == []
    return len(index)


def _only_index_files(path: Path) -> None:
    """Nothing in the directory but the current generation's files (after a write)."""
    m = store.read_manifest(path)
    names = {p.name for p in path.iterdir()}
    assert names == {".lock", ".readers", "manifest.json", *m.files.values(), *m.segments}


def _rag(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fake_rag", *args],
        env=env,
        preexec_fn=default_sigint,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_writes_leave_the_previous_or_the_new_index(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "idx"
    Index.create(path, embedder="fake").add(_batch(0))
    started = time.monotonic()
    proc = _rag("index", str(_jsonl(tmp_path, 1)), "--index", str(path))
    assert proc.wait(120) == 0, proc.stderr.read() if proc.stderr else ""
    duration = time.monotonic() - started
    documents = _documents(path)
    assert documents == 2 * BATCH
    outcomes = Counter()
    for k in range(2, 8):
        sig = rng.choice([signal.SIGKILL, signal.SIGINT])
        proc = _rag("index", str(_jsonl(tmp_path, k)), "--index", str(path))
        if k % 2:  # somewhere in the run: start-up, reading, chunking, embedding or writing
            time.sleep(rng.uniform(0.2, 1.2) * duration)
        else:  # inside the write: once it has listed the files it is about to create
            deadline = time.monotonic() + 120
            while not (path / "pending.json").exists() and proc.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        now = _documents(path)
        assert now in (documents, documents + BATCH), (k, sig, now, err)
        saved = now == documents + BATCH
        if sig == signal.SIGINT and proc.returncode == 130:  # the message says what happened
            said = "the changes are saved" if saved else "was not changed"
            assert said in err.splitlines()[-1], err
        outcomes[(sig.name, "saved" if saved else "unchanged")] += 1
        documents = now
    # The next complete write removes whatever the killed ones left.
    proc = _rag("index", str(_jsonl(tmp_path, 99)), "--index", str(path))
    assert proc.wait(120) == 0
    assert _documents(path) == documents + BATCH
    _only_index_files(path)
    assert sum(outcomes.values()) == 6


# -- full and read-only file systems -----------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path | None]:
    """A 4 MB tmpfs (None where mounting is not allowed)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if os.environ.get("RAG_FAULT_NO_MOUNT"):  # to run the fallback where mounting works
        yield None
        return
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:  # no mount command
        done = None
    if done is None or done.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(fs: Path, leave: int) -> Path:
    """Fill ``fs`` so that about ``leave`` bytes stay free."""
    filler = fs / "filler"
    free = shutil.disk_usage(fs).free
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def _inject(rng: random.Random, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a tmpfs: make one of the writes of a generation fail with ENOSPC."""
    import numpy as np

    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    target = rng.choice(["records", "write_npy", "np.save", "bm25", "write_json"])

    def fail(*args: object, **kwargs: object) -> None:
        raise full

    if target == "records":
        monkeypatch.setattr("rag.writer.write_records", fail)
    elif target == "write_npy":
        monkeypatch.setattr(diskio, "write_npy", fail)
    elif target == "np.save":
        monkeypatch.setattr(np, "save", fail)
    elif target == "bm25":
        monkeypatch.setattr("rag.bm25.save", fail)
    else:
        real = diskio.write_json
        monkeypatch.setattr(
            diskio,
            "write_json",
            lambda f, d: fail() if f.name == "manifest.json.tmp" else real(f, d),
        )


def test_full_disk_leaves_the_previous_index(
    small_fs: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(SEED)
    path = (small_fs or tmp_path) / "idx"
    Index.create(path, embedder="fake").add(_batch(0))
    documents = _documents(path)
    failures = 0
    for k in range(1, 7):
        with monkeypatch.context() as patch:
            filler = None
            if small_fs is not None:
                # Leave from nothing to about what the write needs; every other round skip
                # the free-space check so that the write itself runs out of space.
                if k % 2:
                    patch.setattr(diskio, "check_space", lambda *args: None)
                filler = _fill(small_fs, rng.randint(0, 120_000 if k % 2 else 600_000))
            else:
                _inject(rng, patch)
            try:
                Index.open(path).add(_batch(k))
            except IndexWriteError as e:
                failures += 1
                print(f"round {k}: {e}")
                assert str(e).startswith("no space left on device while writing ")
                assert str(e).endswith("; the index was not changed")
            if filler is not None:
                filler.unlink()
        now = _documents(path)
        assert now in (documents, documents + BATCH)
        assert not (path / "pending.json").exists()
        assert not (path / "manifest.json.tmp").exists()
        documents = now
    assert failures >= 3
    Index.open(path).add(_batch(99))
    _only_index_files(path)


def test_read_only_file_system(
    small_fs: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = (small_fs or tmp_path) / "idx"
    Index.create(path, embedder="fake").add(_batch(0))
    (tmp_path / "more.jsonl").write_text(json.dumps(_batch(1)[0], ensure_ascii=False))
    if small_fs is not None:
        gc.collect()  # close the removed generation's files: a remount waits for none open
        ro = subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=False)
        assert ro.returncode == 0
    else:  # the lock file is the first thing a write opens
        real_open = open

        def read_only(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if any(m in mode for m in "wax+"):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
            return real_open(file, mode, *args, **kwargs)

        monkeypatch.setattr("builtins.open", read_only)
    runner = CliRunner()
    message = f"error: cannot write the index at {path}: Read-only file system\n"
    for args in (["index", str(tmp_path / "more.jsonl")], ["remove", "r0-1"]):
        result = runner.invoke(app, [*args, "--index", str(path)])
        assert (result.exit_code, result.output) == (1, message)
    result = runner.invoke(app, ["search", "반도체", "--index", str(path), "--json"])
    assert result.exit_code == 0 and len(json.loads(result.output)) == 5
    assert runner.invoke(app, ["info", "--check", "--index", str(path)]).exit_code == 0
    if small_fs is not None:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)


# -- readers during writes -----------------------------------------------------------------


def _reader(path: str, seed: int, ready: Any, stop: Any, results: Any) -> None:
    register_backend("fake", FakeEmbedder)  # a spawned process starts without it
    # Widen the race the probe hit 2 times in 15,533 opens: a pause between reading the
    # manifest and opening the files it names, while the writer may switch generations.
    rng, open_files = random.Random(seed), store._open
    store._open = lambda *args: (time.sleep(rng.uniform(0, 0.05)), open_files(*args))[1]  # type: ignore[assignment]
    Index.open(path).search("반도체 수출")  # imports done, model loaded
    ready.put(True)
    seen: Counter[int] = Counter()
    errors: list[str] = []
    while not stop.is_set():
        try:
            index = Index.open(path)
            hits = index.search("반도체 수출", k=3)
            seen[len(index)] += 1
            if len(index) and len(hits) != 3:
                errors.append(f"{len(hits)} hits from {len(index)} documents")
        except Exception as e:  # every failure is the finding
            errors.append(f"{type(e).__name__}: {e}")
    results.put((dict(seen), errors))


def test_readers_see_a_whole_generation_while_a_writer_writes(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "idx"
    index = Index.create(path, embedder="fake")
    index.add(_batch(0))
    # Spawned, not forked: a child forked after FAISS has started its OpenMP threads hangs.
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Queue(), context.Event(), context.Queue()
    readers = [
        context.Process(target=_reader, args=(str(path), SEED + n, ready, stop, results))
        for n in range(2)
    ]
    for r in readers:
        r.start()
    for _ in readers:
        ready.get(timeout=120)
    valid = {len(index)}
    added: list[str] = []
    try:
        for k in range(1, 16):
            if k % 4 == 0:
                index.remove(rng.sample(added, rng.randint(1, len(added))))
            else:
                batch = _batch(k, rng.randint(1, BATCH))
                index.add(batch)
                added = [r["id"] for r in batch]
            valid.add(len(index))
            time.sleep(rng.uniform(0, 0.05))
    finally:
        stop.set()
        outcomes = [results.get(timeout=60) for _ in readers]
        for r in readers:
            r.join(10)
    seen = Counter()
    for counts, errors in outcomes:
        assert errors == []
        seen.update(counts)
    assert set(seen) <= valid
    print("reader opens", sorted(seen.items()))
    assert sum(seen.values()) >= 10, seen
