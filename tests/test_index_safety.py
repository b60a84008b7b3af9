"""Issue 10, index safety: each fault of the reliability probe, reproduced and fixed.

User files never removed, undecodable file names, a full disk, readers during a write, the
message after Ctrl-C, read-only file systems, tampered index files, ``--index`` at a file and
runs that index nothing. Kills, a real full tmpfs and concurrent readers are in test_faults.py.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.core import TyperGroup
from typer.testing import CliRunner

from rag import Index, IndexCorrupt, RagError, diskio, manifest, output, store
from rag.cli import app
from rag.errors import IndexWriteError
from tests.conftest import KAKAO, ROOT, SEEDS

# The files the probe lost: named like generation files, none written by an index.
USER_FILES = [
    "records/notes.txt",
    "vectors-2019.csv",
    "ann-report.pdf",
    "bm25-notes.txt",
    "filters",
]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_INDEX", "idx")
    shutil.copytree(SEEDS, tmp_path / "articles")

    def invoke(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, list(args))
        out = re.sub(r"in \d+\.\d s", "in T s", result.output)
        return result.exit_code, re.sub(r"(?m)^(read|chunk|embed|write) \d+/\d+\n", "", out)

    return invoke


def _make_user_files(folder: Path) -> dict[str, bytes]:
    for name in USER_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(f"user data {name}".encode())
    return {name: (folder / name).read_bytes() for name in USER_FILES}


def _records(n: int, topic: str = "반도체") -> list[dict]:
    return [
        {
            "id": f"{topic}-{i}",
            "title": f"{topic} {i}",
            "text": f"{topic} 기사 {i}번이다. 값은 {i}이다.",
        }
        for i in range(n)
    ]


def _listing(path: Path) -> dict[str, int]:
    return {p.relative_to(path).as_posix(): p.stat().st_size for p in sorted(path.rglob("*"))}


# -- 1. user files ------------------------------------------------------------------------


def test_index_in_a_non_empty_directory_is_refused(run, tmp_path: Path) -> None:
    """`cd proj && rag index --index . articles` deleted the user's files."""
    before = _make_user_files(tmp_path)
    code, out = run("index", "--index", ".", "articles", "--embedder", "fake")
    assert (code, out) == (
        1,
        "error: . is not empty and holds no index (it has ann-report.pdf and 5 more); "
        "give --index a new or empty directory\n",
    )
    assert {name: (tmp_path / name).read_bytes() for name in USER_FILES} == before
    assert not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize("name", ["pending.json", "manifest.json.tmp", ".lock", ".readers"])
def test_a_users_file_named_like_an_index_leftover_is_not_taken_for_one(
    run, tmp_path: Path, name: str
) -> None:
    """A folder holding a user's pending.json (or manifest.json.tmp, .lock, .readers) was
    taken for one a killed first write left: `rag index` overwrote or removed the file."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / name).write_text("MY DATA")
    code, out = run("index", "--index", "mine", "articles", "--embedder", "fake")
    assert (code, out) == (
        1,
        f"error: mine is not empty and holds no index (it has {name}); "
        "give --index a new or empty directory\n",
    )
    assert [p.name for p in (tmp_path / "mine").iterdir()] == [name]
    assert (tmp_path / "mine" / name).read_text() == "MY DATA"


def test_a_folder_with_another_programs_manifest_is_no_index(run, tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "manifest.json").write_text('{"name": "my extension", "version": "1.0"}')
    code, out = run("search", "--index", "app", "카카오")
    assert (code, out) == (
        1,
        "error: app holds no rag index: its manifest.json is another program's; "
        "give --index a new or empty directory\n",
    )
    assert (tmp_path / "app" / "manifest.json").read_text().startswith('{"name"')


def test_output_failing_after_a_write_says_the_write_is_saved(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rag remove X --json > /dev/full` (or with stdout closed) removed X and then said only
    "error: No space left on device", which reads as if nothing was removed."""
    assert run("index", "articles", "--embedder", "fake")[0] == 0

    def full(data: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("rag.output.print_json", full)
    code, out = run("remove", KAKAO, "--json")
    assert (code, out) == (
        1,
        "error: No space left on device; the index at idx was updated before that\n",
    )
    assert len(Index.open(tmp_path / "idx")) == 1
    code, out = run("search", "카카오", "--json")  # no write: nothing to add
    assert (code, out) == (1, "error: No space left on device\n")


def test_json_to_a_closed_stdout_is_an_os_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout", None)  # how Python starts with `>&-`
    with pytest.raises(OSError, match="standard output is closed"):
        output.print_json({"removed": 1})


def test_the_checkouts_own_index_directory_takes_the_default_index(run, tmp_path: Path) -> None:
    """`rag index examples/articles` in a fresh clone writes to the committed `index/`, which
    git keeps by its .gitignore alone (the README it held before made every first run fail)."""
    (tmp_path / "index").mkdir()
    shutil.copy(ROOT / "index" / ".gitignore", tmp_path / "index")
    code, out = run("index", "--index", "index", "articles", "--embedder", "fake")
    assert code == 0, out
    assert len(Index.open(tmp_path / "index")) == 2
    assert (tmp_path / "index" / ".gitignore").read_bytes() == (
        ROOT / "index" / ".gitignore"
    ).read_bytes()


def test_writes_remove_only_files_the_index_wrote(seeds: Path) -> None:
    """Files put into an index directory survive every write, even ones named like the
    generation files the next write would use."""
    index = Index.create(embedder="fake")
    before = _make_user_files(index.path)
    (index.path / "live-2.npy").write_bytes(b"not ours")  # the next generation's name
    before["live-2.npy"] = b"not ours"
    index.add([seeds / f"{KAKAO}.txt"])
    index.add([seeds])
    index.remove(KAKAO)
    assert {name: (index.path / name).read_bytes() for name in before} == before
    m = store.read_manifest(index.path)
    assert m.generation == 5 and m.files["live"] == "live-5.npy"  # 2 was taken
    theirs = {p.name for p in index.path.iterdir()} - {n.split("/")[0] for n in before}
    assert theirs == {".lock", ".readers", "manifest.json", *m.files.values(), *m.segments}
    assert len(Index.open()) == 1


def test_interrupted_write_leftovers_are_removed_by_name(seeds: Path) -> None:
    """What a killed write left (listed in pending.json) goes; nothing else does."""
    index = Index.create(embedder="fake")
    index.add([seeds / f"{KAKAO}.txt"])
    (index.path / "pending.json").write_text(
        json.dumps({"generation": 3, "files": ["records-3.sqlite", "bm25-3", "../escape.txt"]})
    )
    (index.path / "records-3.sqlite").write_bytes(b"half written")
    (index.path / "bm25-3").mkdir()
    (index.path / "bm25-3" / "data.npy").write_bytes(b"half")
    (index.path.parent / "escape.txt").write_text("outside")
    index.add([seeds])
    assert not (index.path / "pending.json").exists()
    assert (index.path.parent / "escape.txt").read_text() == "outside"
    m = store.read_manifest(index.path)
    assert m.files["live"] == "live-3.npy" and len(Index.open()) == 2


def test_a_damaged_pending_list_removes_nothing_and_stops_nothing(seeds: Path) -> None:
    # Nested too deep for json: the next `rag index` failed with a RecursionError.
    index = Index.create(embedder="fake")
    index.add([seeds / f"{KAKAO}.txt"])
    (index.path / "pending.json").write_text("[" * 200_000 + "]" * 200_000)
    assert store.read_pending(index.path) == []
    index.add([seeds])
    assert len(Index.open()) == 2


def test_a_first_write_killed_midway_does_not_block_the_next(tmp_path: Path, seeds: Path) -> None:
    """kill -9 during the very first write leaves the lock, pending.json and partial files:
    the directory still counts as empty, and the next run cleans them up."""
    path = tmp_path / "index"
    path.mkdir()
    (path / ".lock").write_text("")
    (path / "pending.json").write_text(json.dumps({"files": ["records-1.sqlite", "bm25-1"]}))
    (path / "records-1.sqlite").write_bytes(b"partial")
    (path / "bm25-1").mkdir()
    Index.create(path, embedder="fake").add([seeds])
    m = store.read_manifest(path)
    assert {p.name for p in path.iterdir()} == {
        ".lock",
        ".readers",
        "manifest.json",
        *m.files.values(),
        *m.segments,
    }
    assert len(Index.open(path)) == 2


def test_two_processes_creating_the_same_index(tmp_path: Path, seeds: Path) -> None:
    """The second creator (it checked before the first one wrote) must not write over it."""
    index = Index.create(tmp_path / "idx", embedder="fake")
    index.add([seeds])
    fresh = index._snap.manifest.model_copy(update={"generation": 0, "files": {}, "sizes": {}})
    with store.lock(index.path), pytest.raises(RagError, match="an index already exists"):
        store.write(index.path, fresh, None, set(), [], [], np.zeros((0, 64), np.float32))
    assert len(Index.open(index.path)) == 2


# -- 2. undecodable file names ----------------------------------------------------------


def test_file_name_with_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    folder = tmp_path / "arts"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/caf\xff\xfe.txt"
    Path(os.fsdecode(raw)).write_text("카카오가 구조조정을 발표했다. 클라우드 사업을 줄인다.\n")
    (folder / "ok.txt").write_text("삼성전자가 반도체 투자를 늘린다고 밝혔다.\n")
    index = Index.create(embedder="fake")
    report = index.add([folder])
    assert sorted(report.added) == ["caf\\xff\\xfe", "ok"] and report.skipped == []
    paths = {d.doc_id: d.path for d in index.documents()}
    assert paths["caf\\xff\\xfe"] == f"{folder}/caf\\xff\\xfe.txt"
    assert index.add([folder]).unchanged == ["caf\\xff\\xfe", "ok"]
    assert index.remove(os.fsdecode(raw)) == ["caf\\xff\\xfe"]
    assert [d.doc_id for d in Index.open().documents()] == ["ok"]


def test_cli_reports_an_undecodable_name_as_json(run, tmp_path: Path) -> None:
    Path(os.fsdecode(os.fsencode(tmp_path / "articles") + b"/\xc0.txt")).write_text(
        "현대차가 전기차 공장을 짓는다.\n"
    )
    code, out = run("index", "articles", "--embedder", "fake", "--json")
    assert code == 0 and "\\xc0" in json.loads(out)["added"]


# -- 4. full disk -------------------------------------------------------------------------


def _indexed(seeds: Path) -> tuple[Index, dict[str, int]]:
    index = Index.create(embedder="fake")
    index.add([seeds / f"{KAKAO}.txt"])
    return index, _listing(index.path)


def _assert_unchanged(index: Index, listing: dict[str, int]) -> None:
    # As it was: no partial file, no manifest.json.tmp, no pending.json.
    assert _listing(index.path) == listing
    assert [d.doc_id for d in Index.open().documents()] == [KAKAO]


def test_not_enough_free_space_is_refused_before_writing(
    seeds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, listing = _indexed(seeds)
    monkeypatch.setattr(
        shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 5000)
    )  # type: ignore[attr-defined]
    with pytest.raises(IndexWriteError) as e:
        index.add([seeds])
    assert re.fullmatch(
        rf"no space left on device while writing generation 3 of the index at {index.path} "
        r"\(needs about \d+\.\d MB, 0\.0 MB free\); the index was not changed",
        str(e.value),
    )
    _assert_unchanged(index, listing)


def test_estimate_covers_what_a_write_takes(seeds: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needed: list[int] = []
    real = diskio.check_space
    monkeypatch.setattr(diskio, "check_space", lambda p, g, n: (needed.append(n), real(p, g, n)))
    index = Index.create(embedder="fake")
    index.add([seeds])
    index.add(_records(40))
    sizes = [sum(store.read_manifest(index.path).sizes.values())]
    assert len(needed) == 3 and needed[-1] >= sizes[-1]


def _full(error: BaseException):
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    return fail


def _enospc(*args: object) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize(
    ("target", "error", "file"),
    [
        (
            "rag.writer.write_records",
            sqlite3.OperationalError("database or disk is full"),
            "seg-3/records.sqlite",
        ),
        ("rag.diskio.write_npy", _enospc(), "seg-3/vectors.npy"),
        ("rag.bm25.save", OSError("123 requested and 45 written"), "seg-3"),
        (
            "faiss.write_index",
            RuntimeError("write error in x: 1 != 2 (No space left on device)"),
            "ann-3.faiss",
        ),
    ],
)
def test_no_space_while_writing_is_one_line_and_cleans_up(
    seeds: Path, monkeypatch: pytest.MonkeyPatch, target: str, error: BaseException, file: str
) -> None:
    index, listing = _indexed(seeds)
    monkeypatch.setenv("RAG_ANN_THRESHOLD", "1")  # so that the ANN file is written too
    monkeypatch.setattr(target, _full(error))
    with pytest.raises(IndexWriteError) as e:
        index.add([seeds])
    assert str(e.value) == (
        f"no space left on device while writing {index.path / file}; the index was not changed"
    )
    monkeypatch.delenv("RAG_ANN_THRESHOLD")
    _assert_unchanged(index, listing)


def test_no_space_for_the_manifest_removes_the_temp_file(
    seeds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, listing = _indexed(seeds)
    real = diskio.write_json

    def half_written(file: Path, data: object) -> None:
        if file.name != "manifest.json.tmp":
            return real(file, data)
        file.write_text('{"format_version": 2, "gen')
        raise _enospc()

    monkeypatch.setattr(diskio, "write_json", half_written)
    with pytest.raises(IndexWriteError, match=r"writing \S+/manifest\.json\.tmp; the index was"):
        index.add([seeds])
    _assert_unchanged(index, listing)


def test_cli_says_no_space_in_one_line(run, monkeypatch: pytest.MonkeyPatch) -> None:
    run("index", "articles/" + f"{KAKAO}.txt", "--embedder", "fake")
    monkeypatch.setattr("rag.diskio.write_npy", _full(_enospc()))
    assert run("index", "articles") == (
        1,
        "error: no space left on device while writing idx/seg-3/vectors.npy; "
        "the index was not changed\n",
    )


# -- 7. readers during a write -------------------------------------------------------------


def test_reader_holding_an_old_manifest_gets_a_complete_generation(
    seeds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader read the manifest, then a writer switched generations (removing the files
    it named) before it opened them: it opens the generation that is current now."""
    index = Index.create(embedder="fake")
    index.add([seeds / f"{KAKAO}.txt"])
    stale = store.read_manifest(index.path)
    index.add([seeds])
    with pytest.raises(IndexCorrupt, match=r"filters-2\.npy is missing"):
        store._open(index.path, stale)  # what the probe's reader hit
    calls = []
    real = store.read_manifest

    def racing(path: Path) -> manifest.Manifest:
        calls.append(path)
        return stale if len(calls) == 1 else real(path)

    monkeypatch.setattr(store, "read_manifest", racing)
    snapshot = store.read(index.path)
    assert (snapshot.manifest.generation, snapshot.manifest.documents, len(calls)) == (3, 2, 3)


def test_a_file_rewritten_in_place_under_an_open_index_is_refused_not_read(seeds: Path) -> None:
    """Another program writing a file of the open generation in place (a copy over it, a
    sync tool) left its memory map reading zeros past the new end: the search answered
    from them silently, or, past the first page, the process died with SIGBUS."""
    index = Index.create(embedder="fake")
    index.add([seeds])
    reader = Index.open(index.path)
    assert reader.search("카카오엔터프라이즈 구조조정", k=1)
    # Another writer switching generations removes files the reader has open: no problem.
    index.remove(KAKAO)
    assert reader.search("카카오엔터프라이즈 구조조정", k=1)
    current = Index.open(index.path)
    name = next(n for n in store.read_manifest(index.path).sizes if n.endswith("rows.npy"))
    with open(index.path / name, "r+b") as f:
        f.truncate(128)
    with pytest.raises(IndexCorrupt, match=rf"{re.escape(name)} is 128 bytes, manifest says"):
        current.search("카카오엔터프라이즈 구조조정", k=1)


def test_reader_gives_up_when_the_index_keeps_changing(
    seeds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = Index.create(embedder="fake")
    index.add([seeds])
    real = store.read_manifest
    generations = iter(range(100, 200))

    def always_newer(path: Path) -> manifest.Manifest:
        m = real(path)
        gen = next(generations)
        files = manifest.generation_files(gen, False, "bm25" in m.files)
        return m.model_copy(
            update={"generation": gen, "files": files, "sizes": {}, "checksums": {}}
        )

    monkeypatch.setattr(store, "read_manifest", always_newer)
    with pytest.raises(RagError, match="changed on every attempt to open it; retry"):
        store.read(index.path)


# -- 8. Ctrl-C -----------------------------------------------------------------------------


def test_ctrl_c_before_the_switch_says_not_changed(run, monkeypatch: pytest.MonkeyPatch) -> None:
    run("index", f"articles/{KAKAO}.txt", "--embedder", "fake")
    monkeypatch.setattr("rag.bm25.save", _full(KeyboardInterrupt()))
    assert run("index", "articles") == (
        130,
        "error: interrupted; the index at idx was not changed\n",
    )
    assert len(Index.open()) == 1


def test_ctrl_c_while_making_a_new_index_leaves_none(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rag.bm25.save", _full(KeyboardInterrupt()))
    code, out = run("index", "articles", "--embedder", "fake")
    assert (code, out) == (130, "error: interrupted; the index at idx was not changed\n")
    assert not (tmp_path / "idx").exists()


def test_ctrl_c_while_undoing_a_new_empty_index_leaves_one_the_next_run_can_make(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rag index` on a folder with nothing it reads makes an index, then removes it again.
    A Ctrl-C once its files were gone but not yet its manifest left a manifest naming
    missing files, and the next `rag index` failed on it until the directory was deleted."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.pdf").write_text("not an article")
    real = diskio.remove

    def removed_then_interrupted(path: Path, names: Any) -> None:
        names = list(names)
        real(path, names)
        if any(n.startswith("live-") for n in names):
            raise KeyboardInterrupt

    monkeypatch.setattr(diskio, "remove", removed_then_interrupted)
    assert run("index", "docs", "--embedder", "fake")[0] == 130
    monkeypatch.setattr(diskio, "remove", real)
    assert run("index", "articles", "--embedder", "fake")[0] == 0
    assert len(Index.open("idx")) == 2
    assert Index.open("idx").check()[1] == []


def test_ctrl_c_as_a_new_index_is_made_leaves_none(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C once `Index.create` had switched in the new index, before `rag index` noted
    it: an empty index was left where there was none, and the CLI said nothing changed."""
    real = Index.create.__func__

    def created_then_interrupted(cls: type[Index], *args: Any, **kwargs: Any) -> Index:
        real(cls, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Index, "create", classmethod(created_then_interrupted))
    assert run("index", "articles", "--embedder", "fake") == (
        130,
        "error: interrupted; the index on disk was not changed\n",
    )
    assert not (tmp_path / "idx").exists()


SAVED = (130, "error: interrupted after the index at idx was updated; the changes are saved\n")


def test_ctrl_c_after_the_switch_says_saved(run, monkeypatch: pytest.MonkeyPatch) -> None:
    run("index", f"articles/{KAKAO}.txt", "--embedder", "fake")
    real = store.read
    calls = []

    def interrupted_after_write(path: Path) -> store.Snapshot:
        calls.append(path)
        if len(calls) == 3:  # open, under the lock, after the write
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(store, "read", interrupted_after_write)
    assert run("index", "articles") == SAVED
    monkeypatch.setattr(store, "read", real)
    assert len(Index.open("idx")) == 2


def test_ctrl_c_just_after_the_manifest_is_replaced_keeps_the_new_generation(
    run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C right after ``manifest.json`` was replaced, before the write noted it: the
    write took itself for unfinished and removed the new generation's files, leaving a
    manifest that named missing files (seen in tests/test_faults.py)."""
    run("index", f"articles/{KAKAO}.txt", "--embedder", "fake")
    real = Path.replace

    def replaced_then_interrupted(self: Path, target: Any) -> Path:
        done = real(self, target)
        if Path(target).name == "manifest.json":
            raise KeyboardInterrupt
        return done

    monkeypatch.setattr(Path, "replace", replaced_then_interrupted)
    assert run("index", "articles") == SAVED
    monkeypatch.setattr(Path, "replace", real)
    assert len(Index.open("idx")) == 2
    assert Index.open("idx").check()[1] == []


@pytest.mark.parametrize(
    "where", ["rag.output.print_report", "rag.index.store.lock", "typer.core.TyperGroup.invoke"]
)
def test_ctrl_c_once_the_write_is_done_says_saved(
    run, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # After the switch, outside the write: as the lock is released, while the report
    # prints, or as the command returns. These said "was not changed" (seen as a flaky
    # tests/test_faults.py).
    run("index", f"articles/{KAKAO}.txt", "--embedder", "fake")
    if where.endswith("print_report"):
        monkeypatch.setattr(where, _full(KeyboardInterrupt()))
    elif where.endswith("invoke"):
        returned = TyperGroup.invoke

        def interrupted_on_return(self: TyperGroup, ctx: Any) -> Any:
            returned(self, ctx)
            raise KeyboardInterrupt

        monkeypatch.setattr(where, interrupted_on_return)
    else:
        real = store.lock

        @contextlib.contextmanager
        def interrupted_on_release(path: Path) -> Iterator[None]:
            with real(path):
                yield
            raise KeyboardInterrupt

        monkeypatch.setattr(where, interrupted_on_release)
    code, out = run("index", "articles")
    assert (code, out.splitlines(keepends=True)[-1]) == SAVED  # after the report, if printed
    assert len(Index.open("idx")) == 2


def test_an_index_interrupted_after_its_write_reads_the_new_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the switch (as the old generation's files are removed, or as the new one
    is opened): `remove` said the change was saved, but the `Index` kept searching the
    generation before it, the removed document included, until it was opened again."""
    index = Index.create(tmp_path / "idx", embedder="fake")
    index.add(_records(3))
    real = store.read
    calls = []

    def interrupted_after_write(path: Path) -> store.Snapshot:
        calls.append(path)
        if len(calls) == 2:  # under the lock, after the write
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(store, "read", interrupted_after_write)
    with pytest.raises(KeyboardInterrupt, match="the changes are saved"):
        index.remove("반도체-1")
    assert len(index) == 2
    assert "반도체-1" not in {hit.doc_id for hit in index.search("반도체 기사 1번", k=5)}


# -- 9. read-only file systems -------------------------------------------------------------


def test_read_only_index_searches_and_refuses_writes_in_one_line(
    run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(A real read-only mount is in test_faults.py; here the lock file's open fails.)"""
    run("index", "articles", "--embedder", "fake")
    real_open = open

    def read_only(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if any(m in mode for m in "wax+"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", read_only)
    message = "error: cannot write the index at idx: Read-only file system\n"
    assert run("index", "articles") == (1, message)
    assert run("remove", KAKAO) == (1, message)
    code, out = run("search", "카카오엔터프라이즈", "-k", "1")
    assert code == 0 and out.startswith("1. 사업 재조정")


# -- 10. tampered index files ------------------------------------------------------------


def _edit_manifest(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = json.loads((path / "manifest.json").read_text())
    change(data)
    (path / "manifest.json").write_text(json.dumps(data))


def _vocabulary_of_another_size(path: Path) -> None:
    """Rewrite a BM25 segment's terms consistently (size and checksum fixed up in the
    manifest), one term short of its columns."""
    m = store.read_manifest(path)
    name = f"{m.segments[0]}/vocab.json"
    terms = json.loads((path / name).read_text())[:-1]
    (path / name).write_text(json.dumps(terms))
    _edit_manifest(
        path,
        lambda d: (
            d["sizes"].update({name: (path / name).stat().st_size}),
            d["checksums"].update({name: manifest.checksum(path / name)}),
        ),
    )


def _garble_vectors(path: Path) -> None:
    """Random bytes over the vectors after the header: same size, readable header."""
    file = path / store.read_manifest(path).segments[0] / "vectors.npy"
    header = len(file.read_bytes()) - np.load(file).nbytes
    data = np.random.default_rng(0).bytes(file.stat().st_size - header)
    file.write_bytes(file.read_bytes()[:header] + data)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: _edit_manifest(p, lambda d: d.update(files={})), "files has no 'filters'"),
        (
            lambda p: _edit_manifest(p, lambda d: d.update(files={}, sizes={}, checksums={})),
            "manifest.json is invalid: files is empty",
        ),
        (
            lambda p: _edit_manifest(p, lambda d: d["embedder"].pop("spec")),
            "embedder: .*'spec' is missing",
        ),
        (
            lambda p: _edit_manifest(p, lambda d: d.update(format_version="2")),
            "format_version '2' is not a number",
        ),
        (_vocabulary_of_another_size, r"seg-\d+ is not a readable BM25 segment"),
        (
            lambda p: _edit_manifest(
                p, lambda d: d["files"].update(records="../other/records-2.sqlite")
            ),
            r"'\.\./other/records-2\.sqlite' is not the records file of generation 2",
        ),
        (
            lambda p: _edit_manifest(p, lambda d: d["sizes"].update({"../../etc/passwd": 1})),
            r"'\.\./\.\./etc/passwd' is not a file of generation 2",
        ),
        (
            lambda p: _edit_manifest(p, lambda d: d.update(previous=["../keep.txt"])),
            r"'\.\./keep\.txt' is not a generation file name",
        ),
        (
            _garble_vectors,
            r"seg-2/vectors\.npy has changed since it was written \(checksum differs\)",
        ),
    ],
)
def test_tampered_index_is_refused_in_one_line(seeds: Path, damage, message: str) -> None:
    index = Index.create(embedder="fake")
    index.add([seeds])
    damage(index.path)
    with pytest.raises(IndexCorrupt, match=message):
        Index.open()


def test_garbage_in_large_vectors_is_caught_on_open_and_by_check(
    run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Files above the on-open checksum limit: a sample of rows is checked on open, every
    byte by `rag info --check`."""
    run("index", "articles", "--embedder", "fake")
    monkeypatch.setattr(manifest, "CHECK_ON_OPEN_BYTES", 0)
    _garble_vectors(tmp_path / "idx")
    code, out = run("search", "카카오")
    assert (code, out) == (
        1,
        "error: index at idx is corrupt: seg-2/vectors.npy holds values no embedder produces\n",
    )


def test_info_check(run, tmp_path: Path) -> None:
    run("index", "articles", "--embedder", "fake")
    code, out = run("info", "--check")
    assert code == 0 and out.splitlines()[-1] == "check      all 11 files match their checksums"
    # An index written before checksums were recorded still opens; --check says what it did.
    _edit_manifest(tmp_path / "idx", lambda d: d.pop("checksums"))
    code, out = run("info", "--check")
    assert code == 0
    assert (
        out.splitlines()[-1]
        == "check      sizes match; no checksums recorded (written by an older rag)"
    )


def test_info_check_describes_the_generation_it_checked(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rag info --check` printed the generation it had opened but checked the one on disk:
    after a write in between, the two described different indexes."""
    import rag.cli

    run("index", "articles", "--embedder", "fake")
    real_open = rag.cli._open

    def open_then_another_process_writes(*args: Any, **kwargs: Any) -> Index:
        opened = real_open(*args, **kwargs)
        Index.open("idx").add(_records(2))
        return opened

    monkeypatch.setattr(rag.cli, "_open", open_then_another_process_writes)
    code, out = run("info", "--check")
    now = store.read_manifest(tmp_path / "idx")
    lines = out.splitlines()
    assert code == 0 and f"documents  {now.documents}" in lines
    assert lines[-1] == f"check      all {len(now.checksums)} files match their checksums"


def test_info_check_finds_a_changed_large_file(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("index", "articles", "--embedder", "fake")
    monkeypatch.setattr(manifest, "CHECK_ON_OPEN_BYTES", 0)
    records = tmp_path / "idx" / "seg-2" / "records.sqlite"
    data = bytearray(records.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in a page SQLite may never read
    records.write_bytes(bytes(data))
    assert run("info", "--check")[1].endswith(
        "error: index at idx is corrupt: seg-2/records.sqlite has changed since it was written "
        "(checksum differs)\n"
    )


# -- 11. --index at a file ------------------------------------------------------------------


@pytest.mark.parametrize("command", [("index", "articles"), ("search", "카카오"), ("info",)])
def test_index_option_at_a_regular_file(run, tmp_path: Path, command: tuple[str, ...]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert run(*command, "--index", "notes.txt") == (
        1,
        "error: notes.txt is a file, not an index directory\n",
    )
    assert (tmp_path / "notes.txt").read_text() == "mine"


# -- 13. runs that index nothing -----------------------------------------------------------


def test_folder_of_unsupported_files(run, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    for name in ("a.pdf", "b.pdf", "table.csv", ".hidden.pdf"):
        (tmp_path / "docs" / name).write_text("x")
    assert run("index", "docs", "--embedder", "fake") == (
        1,
        "Nothing indexed from docs in T s\n"
        "  added 0, updated 0, unchanged 0, duplicates 0, skipped 0\n"
        "  chunks embedded 0, reused 0\n"
        "error: nothing indexed from docs: 3 files of unsupported types ignored "
        "(.csv 1, .pdf 2; supported: .txt .md .html .htm .jsonl .json)\n",
    )
    assert not (tmp_path / "idx").exists()


def test_every_input_rejected_leaves_no_index(run, tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "empty.txt").write_text("")
    (tmp_path / "bad" / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    code, out = run("index", "bad", "--embedder", "fake")
    assert code == 1 and not out.startswith("Indexed")
    assert out.endswith("error: nothing indexed from bad: 2 inputs rejected (listed above)\n")
    assert not (tmp_path / "idx").exists()
    # A directory that existed (empty) before is kept, empty.
    (tmp_path / "given").mkdir()
    assert run("index", "bad", "--index", "given", "--embedder", "fake")[0] == 1
    assert list((tmp_path / "given").iterdir()) == []
    # An existing index is kept as it was.
    run("index", "articles")
    before = _listing(tmp_path / "idx")
    assert run("index", "bad")[0] == 1
    assert _listing(tmp_path / "idx") == before


def test_a_held_index_does_not_write_into_one_rebuilt_with_another_model(tmp_path: Path) -> None:
    """An Index kept open while its directory was rebuilt with another model embedded new
    articles with its own model into the new index: vectors of another space beside the
    new ones, which the index's check did not see."""
    from rag.errors import EmbedderMismatch
    from tests.conftest import FakeEmbedder

    path = tmp_path / "idx"
    held = Index.create(path, embedder=FakeEmbedder())
    held.add([{"id": "a", "text": "첫 번째 기사 본문이다. 내용이 길다."}])
    shutil.rmtree(path)
    rebuilt = Index.create(path, embedder=FakeEmbedder("b"))
    rebuilt.add([{"id": "b", "text": "두 번째 기사 본문이다. 서울에서 행사가 열렸다."}])
    with pytest.raises(EmbedderMismatch):
        held.add([{"id": "c", "text": "세 번째 기사 본문이다. 부산에서 회의가 열렸다."}])
    assert [d.doc_id for d in Index.open(path, embedder=FakeEmbedder("b")).documents()] == ["b"]


def test_a_held_index_that_removes_from_one_rebuilt_with_another_model_checks_it_next(
    tmp_path: Path,
) -> None:
    """A remove re-reads the index as an add does: after removing from an index rebuilt
    with another model, the held Index searched it with its old model's query vectors."""
    from rag.errors import EmbedderMismatch
    from tests.conftest import FakeEmbedder

    path = tmp_path / "idx"
    held = Index.create(path, embedder=FakeEmbedder())
    held.add([{"id": "a", "text": "첫 번째 기사 본문이다. 내용이 길다."}])
    assert held.search("기사")
    shutil.rmtree(path)
    rebuilt = Index.create(path, embedder=FakeEmbedder("b"))
    rebuilt.add([{"id": "b", "text": "두 번째 기사 본문이다."}, {"id": "c", "text": "세 번째."}])
    assert held.remove("b") == ["b"]
    with pytest.raises(EmbedderMismatch):
        held.search("기사")


def test_threads_asking_for_the_embedder_at_once_load_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads making their first search at the same time each built the model (8 threads:
    1.8 GB instead of 0.35 GB with the onnx runtime)."""
    import threading
    import time

    from rag import index as index_module
    from tests.conftest import FakeEmbedder

    Index.create(tmp_path / "idx", embedder=FakeEmbedder()).add([{"id": "a", "text": "기사 본문."}])
    built = []

    def slow_load(record: dict) -> FakeEmbedder:
        built.append(record)
        time.sleep(0.2)  # a model takes a while to load: the window the threads raced in
        return FakeEmbedder()

    monkeypatch.setattr(index_module, "embedder_for", slow_load)
    shared = Index.open(tmp_path / "idx")
    models = []
    threads = [threading.Thread(target=lambda: models.append(shared.embedder)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len({id(m) for m in models}) == 1


def test_array_headers_are_parsed_one_at_a_time(
    seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """numpy parses a .npy header with ast.literal_eval, which CPython 3.11 cannot run in two
    threads at once (python/cpython#106905): 9 of 611 index opens by 4 threads failed with
    "SystemError: AST constructor recursion depth mismatch". Every array an index reads or
    writes is loaded under one lock."""
    from tests.conftest import FakeEmbedder

    real_load = np.load
    unguarded = []

    def load(*args: object, **kwargs: object) -> object:
        if not diskio.NPY_HEADERS.locked():
            unguarded.append(args[0])
        return real_load(*args, **kwargs)  # type: ignore[call-overload]

    index = Index.create(tmp_path / "idx", embedder=FakeEmbedder())
    index.add([seeds])
    monkeypatch.setattr(np, "load", load)
    index = Index.open(tmp_path / "idx")
    index.search("카카오엔터프라이즈 구조조정")
    index.add([{"id": "new", "text": "새 기사 본문이다. 서울에서 회의가 열렸다."}])
    index.remove("new")
    assert index.check()[1] == []
    assert unguarded == []


def test_a_check_beside_a_writer_finds_no_false_problems(
    seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check that read the manifest just before a writer switched generations then found
    the old generation's files gone, and `rag info --check` called the index corrupt (5
    false problems in 100 writes). Here the writer runs at exactly that moment."""
    import threading

    from tests.conftest import FakeEmbedder

    Index.create(tmp_path / "idx", embedder=FakeEmbedder()).add([seeds])
    checking = Index.open(tmp_path / "idx")
    real_read = store.read_manifest
    started: list[bool] = []
    writers: list[threading.Thread] = []

    def read_then_write(path: Path) -> manifest.Manifest:
        read = real_read(path)
        if not started:
            # Once: a whole write between reading the manifest and verifying the files.
            started.append(True)
            writer = Index.open(tmp_path / "idx")
            thread = threading.Thread(target=writer.add, args=([{"id": "n", "text": "새 기사."}],))
            writers.append(thread)
            thread.start()
            thread.join(timeout=2)  # held back by the check, or done before it verifies
        return read

    monkeypatch.setattr(store, "read_manifest", read_then_write)
    _, problems = checking.check()
    writers[0].join()
    assert problems == []
    monkeypatch.setattr(store, "read_manifest", real_read)
    assert "n" in {d.doc_id for d in Index.open(tmp_path / "idx").documents()}


def test_open_or_create_opens_an_index_another_process_just_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes opening-or-creating a new index at once: the one that lost the race
    failed with "an index already exists" instead of opening it."""
    from rag.errors import IndexNotFound
    from tests.conftest import FakeEmbedder

    Index.create(tmp_path / "idx", embedder=FakeEmbedder()).add([{"id": "a", "text": "기사."}])
    real_read = store.read
    calls = []

    def not_there_yet(path: Path) -> store.Snapshot:
        calls.append(path)
        if len(calls) == 1:  # it looked before the other process had written the manifest
            raise IndexNotFound(path)
        return real_read(path)

    monkeypatch.setattr(store, "read", not_there_yet)
    index = Index.open(tmp_path / "idx", embedder=FakeEmbedder(), create=True)
    assert [d.doc_id for d in index.documents()] == ["a"]


def test_threads_writing_one_cache_entry_do_not_share_a_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temporary name was the process's: two threads writing the same probe-cache or
    judge-cache entry wrote one file, and the second rename failed ("cannot write the probe
    cache"). A failed write leaves no temporary file behind."""
    import threading

    from rag import config

    target = tmp_path / "entry.json"
    both_written = threading.Barrier(2, timeout=5)
    real_fsync = os.fsync

    def fsync_then_wait(fd: int) -> None:
        real_fsync(fd)
        both_written.wait()  # neither renames before both have written

    monkeypatch.setattr(os, "fsync", fsync_then_wait)
    errors: list[BaseException] = []

    def write(text: str) -> None:
        try:
            config.write_whole(target, text)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=write, args=(t,)) for t in ('{"a": 1}', '{"a": 2}')]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_text(encoding="utf-8") in ('{"a": 1}', '{"a": 2}')
    monkeypatch.setattr(os, "fsync", real_fsync)
    folder = tmp_path / "folder.json"
    folder.mkdir()
    with pytest.raises(OSError):
        config.write_whole(folder, "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.json", "folder.json"]


def test_a_whole_write_is_on_disk_before_it_replaces_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A baseline or report was renamed into place before its text reached the disk, so a
    power cut could leave an empty file where the old one was."""
    from rag import config

    target = tmp_path / "baseline.json"
    target.write_text("old", encoding="utf-8")
    events: list[str] = []
    real_fsync, real_replace = os.fsync, Path.replace

    def fsync(fd: int) -> None:
        events.append(f"fsync {os.fstat(fd).st_size} bytes")
        real_fsync(fd)

    def replace(self: Path, other: Path) -> Path:
        events.append("rename")
        return real_replace(self, other)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(Path, "replace", replace)
    config.write_whole(target, "new text")
    assert events == ["fsync 8 bytes", "rename"]
    assert target.read_text(encoding="utf-8") == "new text"


def test_a_whole_write_goes_through_a_symlink_and_keeps_the_mode(tmp_path: Path) -> None:
    """`rag eval --update-baseline` on a baseline linked from elsewhere replaced the link
    with a file: the shared baseline it pointed to was left stale. A group-writable file
    became the umask's mode."""
    from rag import config

    shared = tmp_path / "shared" / "baseline.json"
    shared.parent.mkdir()
    shared.write_text("old", encoding="utf-8")
    shared.chmod(0o664)
    link = tmp_path / "baseline.json"
    link.symlink_to(shared)
    config.write_whole(link, "new")
    assert link.is_symlink() and shared.read_text(encoding="utf-8") == "new"
    assert shared.stat().st_mode & 0o777 == 0o664
    assert sorted(p.name for p in shared.parent.iterdir()) == ["baseline.json"]


def test_a_write_to_a_removed_index_does_not_make_its_directory_again(tmp_path: Path) -> None:
    """An Index whose directory was removed (rm -r) while it was open said IndexNotFound on
    add or remove, but first made the directory again, empty but for a lock file."""
    from rag.errors import IndexNotFound
    from tests.conftest import FakeEmbedder

    index = Index.create(tmp_path / "idx", embedder=FakeEmbedder())
    index.add([{"id": "a", "text": "기사 본문이다."}])
    shutil.rmtree(tmp_path / "idx")
    with pytest.raises(IndexNotFound):
        index.add([{"id": "b", "text": "다른 기사 본문이다."}])
    with pytest.raises(IndexNotFound):
        index.remove("a")
    assert not (tmp_path / "idx").exists()


def test_a_cache_entry_that_is_a_link_is_replaced_not_written_through(tmp_path: Path) -> None:
    """Cache names are predictable (a hash of versions and file times): a link planted in a
    shared cache folder made rag overwrite the file it pointed to with probe vectors."""
    from rag import config

    precious = tmp_path / "precious.txt"
    precious.write_text("my notes\n", encoding="utf-8")
    entry = tmp_path / "cache" / "probes" / "abc.json"
    entry.parent.mkdir(parents=True)
    entry.symlink_to(precious)
    config.write_cached(entry, "[1, 2]")
    assert precious.read_text(encoding="utf-8") == "my notes\n"
    assert not entry.is_symlink() and entry.read_text(encoding="utf-8") == "[1, 2]"


def test_the_report_plot_does_not_overwrite_a_file_named_like_its_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plot was drawn into DIR/.recall_at_k.png.tmp, a user's file of that name lost,
    and two runs into one folder renamed each other's plot away."""
    from rag import report

    monkeypatch.setattr(report, "recall_curve", lambda result: [(1, 0.5), (2, 0.9)])
    mine = tmp_path / ".recall_at_k.png.tmp"
    mine.write_text("mine", encoding="utf-8")
    written = report.plot_recall(None, tmp_path)  # type: ignore[arg-type]
    assert written is not None and written.name == "recall_at_k.png"
    assert mine.read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".recall_at_k.png.tmp", written.name]


@pytest.mark.parametrize("kind", ["fifo", "latin-1"])
def test_a_baseline_that_is_no_text_file_is_one_line(tmp_path: Path, kind: str) -> None:
    """A FIFO named as the baseline (or the report) hung rag eval; a baseline in Latin-1
    was a UnicodeDecodeError traceback."""
    from rag.baseline import read_baseline
    from rag.errors import RagError
    from rag.report import check_directory

    path = tmp_path / "b.json"
    if kind == "fifo":
        os.mkfifo(path)
        os.mkfifo(tmp_path / "report.md")
        with pytest.raises(RagError, match="is not a baseline: Invalid JSON: EOF"):
            read_baseline(path)  # a FIFO no process writes reads as empty
        # A pipe is read: --baseline <(git show main:evals/baseline.json).
        committed = (Path(__file__).parent.parent / "evals" / "baseline.json").read_bytes()
        r, w = os.pipe()
        os.write(w, committed)
        os.close(w)
        try:
            assert read_baseline(f"/proc/self/fd/{r}").gold == "evals/seeds_gold.jsonl"
        finally:
            os.close(r)
        with pytest.raises(RagError, match="is not an evaluation report"):
            check_directory(tmp_path)
    else:
        path.write_bytes(b'{"about": "\xe9"}')
        with pytest.raises(RagError, match="is not a baseline: not UTF-8 text"):
            read_baseline(path)


def test_a_plot_that_is_a_link_is_replaced_as_the_png_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without matplotlib the SVG plot was written through a link (a user's drawing
    overwritten), while the PNG replaced the link: both replace it now."""
    from rag import report

    monkeypatch.setattr(report, "recall_curve", lambda result: [(1, 0.5), (2, 0.9)])
    monkeypatch.setattr(report, "plot_name", lambda result: "recall_at_k.svg")
    drawing = tmp_path / "drawing.svg"
    drawing.write_text("<svg>mine</svg>", encoding="utf-8")
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "recall_at_k.svg").symlink_to(drawing)
    written = report.plot_recall(None, folder)  # type: ignore[arg-type]
    assert written == folder / "recall_at_k.svg" and not written.is_symlink()
    assert drawing.read_text(encoding="utf-8") == "<svg>mine</svg>"


def test_a_baseline_says_what_is_wrong_with_it_and_may_open_with_a_bom(tmp_path: Path) -> None:
    """A baseline an editor saved with a BOM was refused (gold files with one are read), and
    every damaged one was `… is not a baseline: 1 validation error for Baseline`."""
    from rag.baseline import read_baseline
    from rag.errors import RagError

    committed = (Path(__file__).parent.parent / "evals" / "baseline.json").read_bytes()
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + committed)
    assert read_baseline(bom).gold == "evals/seeds_gold.jsonl"
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"gold": 1}', encoding="utf-8")
    with pytest.raises(RagError, match=r"is not a baseline: gold: Input should be a valid string"):
        read_baseline(wrong)
    wrong.write_text("", encoding="utf-8")
    with pytest.raises(RagError, match=r"is not a baseline: Invalid JSON: EOF while parsing"):
        read_baseline(wrong)


def test_a_link_planted_at_the_temporary_name_is_not_followed(tmp_path: Path) -> None:
    """The temporary file's name is predictable (the process and thread): a link planted
    there was opened for writing, overwriting the file it pointed to."""
    import threading

    from rag import config

    precious = tmp_path / "precious.txt"
    precious.write_text("my notes\n", encoding="utf-8")
    target = tmp_path / "entry.json"
    planted = tmp_path / f"entry.json.{os.getpid()}.{threading.get_ident()}.tmp"
    planted.symlink_to(precious)
    config.write_whole(target, "[1, 2]")
    assert precious.read_text(encoding="utf-8") == "my notes\n"
    assert target.read_text(encoding="utf-8") == "[1, 2]" and not planted.exists()
