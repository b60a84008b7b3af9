"""Indexing on a Ray cluster (`rag index --ray`, `rag.distributed`): the same index as a local run.

The cluster is real: two nodes started through Ray's own API (`ray.cluster_utils.Cluster`),
bound to 127.0.0.1, with token authentication on and a token made for the test, shut down
through its handle (never `ray stop`, which ends every Ray process on the machine). It embeds
with the real onnx-int8 runtime: ``$RAG_TEST_MODEL_DIR`` if it holds one, else one built once
for the module (about a minute).

Run with ``pytest -m ray`` after ``pip install -e ".[ray,test]"``; skipped without Ray. The
tests at the end need no cluster and run in the quick suite.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rag import Index
from rag.cli import app
from tests.conftest import ROOT, korquad_paragraphs

PARAGRAPHS = 40
PER_FILE = 5


@pytest.fixture(scope="module")
def cluster(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 2-node Ray cluster on 127.0.0.1; yields its address (HOST:PORT)."""
    with pytest.MonkeyPatch.context() as env:
        # Explicit authentication: token mode with a token made here, never written to disk.
        env.setenv("RAY_AUTH_MODE", "token")
        env.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        # The nodes' processes inherit these: the model and an empty cache.
        env.setenv("RAG_MODEL_DIR", str(model_dir))
        env.setenv("RAG_CACHE_DIR", str(tmp_path_factory.mktemp("worker-cache")))
        pytest.importorskip("ray.data")
        from ray.cluster_utils import Cluster

        from rag.cluster import reload_ray_config

        reload_ray_config()  # in case Ray was imported before the variables were set
        node = {
            "num_cpus": 1,
            "object_store_memory": 100 * 2**20,
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
        }
        handle = Cluster(shutdown_at_exit=True)
        try:
            handle.add_node(**node)
            handle.add_node(**node)
            handle.wait_for_nodes()
            yield str(handle.address)
        finally:
            handle.shutdown()
            reload_ray_config()


@pytest.fixture
def korquad(tmp_path: Path) -> tuple[Path, list[tuple[str, str]]]:
    """The first KorQuAD paragraphs as JSONL files of a few records, and their questions."""
    records, questions = korquad_paragraphs(PARAGRAPHS)
    folder = tmp_path / "korquad"
    folder.mkdir()
    for start in range(0, len(records), PER_FILE):
        part = records[start : start + PER_FILE]
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
        (folder / f"part-{start:03d}.jsonl").write_text(lines, encoding="utf-8")
    return folder, questions


def _chunks(index: Index) -> list[tuple]:
    return [tuple(c.model_dump().values()) for c in index._snap.records.all_chunks()]


def _docs(index: Index) -> list[tuple]:
    return [(d.doc_id, d.key, d.title, d.content_hash, d.chunks) for d in index.documents()]


@pytest.mark.ray
def test_ray_index_equals_local_index_and_reruns_add_nothing(
    cluster: str,
    model_dir: Path,
    korquad: tuple[Path, list[tuple[str, str]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAG_MODEL_DIR", str(model_dir))
    folder, questions = korquad
    local = Index.create(tmp_path / "local", embedder="onnx-int8")
    local_report = local.add([folder])
    events: list[tuple[str, int, int]] = []
    distributed = Index.create(tmp_path / "ray", embedder="onnx-int8")
    report = distributed.add([folder], lambda *e: events.append(e), ray=cluster)

    assert report.added == local_report.added and len(report.added) == PARAGRAPHS
    assert report.chunks_embedded == local_report.chunks_embedded == len(local._snap.vectors)
    assert _docs(distributed) == _docs(local)
    assert _chunks(distributed) == _chunks(local)  # ids, spans, texts, hashes, BM25 terms
    # Sent in the batches a local run forms, the texts get the same vectors.
    gap = np.abs(np.asarray(distributed._snap.vectors) - np.asarray(local._snap.vectors)).max()
    assert gap < 1e-5
    same = sum(
        distributed.search(q, k=1)[0].chunk_id == local.search(q, k=1)[0].chunk_id
        for q, _ in questions
    )
    assert same / len(questions) >= 0.95, f"same top-1 for {same} of {len(questions)}"
    stages = [stage for stage, done, total in events if done == total]
    assert stages == ["cluster", "read", "chunk", "embed", "write"]

    # Run again: nothing is new, nothing is embedded, nothing is written.
    generation = distributed._snap.manifest.generation
    again = distributed.add([folder], ray=cluster)
    assert (again.added, again.updated, again.chunks_embedded) == ([], [], 0)
    assert len(again.unchanged) == PARAGRAPHS
    assert distributed._snap.manifest.generation == generation

    # Edit one article: only it goes to the cluster, and only its changed chunks are embedded.
    first = folder / "part-000.jsonl"
    lines = first.read_text(encoding="utf-8").splitlines(keepends=True)
    record = json.loads(lines[0])
    record["text"] += " 이 문단은 시험을 위해 덧붙인 문장이다."
    lines[0] = json.dumps(record, ensure_ascii=False) + "\n"
    first.write_text("".join(lines), encoding="utf-8")
    edited = distributed.add([folder], ray=cluster)
    local_edited = local.add([folder])
    assert edited.updated == local_edited.updated == [record["id"]]
    assert edited.chunks_embedded == local_edited.chunks_embedded >= 1
    assert edited.chunks_reused == local_edited.chunks_reused
    assert _chunks(distributed) == _chunks(local)


@pytest.mark.ray
def test_cli_ray_auto_uses_ray_address(
    cluster: str, model_dir: Path, seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("RAY_ADDRESS", cluster)
    result = CliRunner().invoke(
        app, ["index", str(seeds), "--index", str(tmp_path / "i"), "--ray", "auto", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["added"]) == 2


@pytest.mark.ray
def test_cli_ray_local_starts_and_stops_its_own_cluster(
    model_dir: Path, seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    monkeypatch.setenv("RAG_MODEL_DIR", str(model_dir))
    before = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    args = ["index", str(seeds), "--index", str(tmp_path / "i"), "--ray", "local:2", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["added"]) == 2 and report["chunks_embedded"] > 0
    local = Index.create(tmp_path / "local", embedder="onnx-int8")
    local.add([seeds])
    assert _chunks(Index.open(tmp_path / "i")) == _chunks(local)
    # Its token lived only in this process's environment, for the run.
    assert {k: os.environ.get(k) for k in before} == before
    import ray

    assert not ray.is_initialized()


@pytest.mark.ray
@pytest.mark.parametrize(
    ("address", "code", "message"),
    [
        ("127.0.0.1:1", 1, "error: cannot reach a Ray cluster at 127.0.0.1:1: Connection refused"),
        ("nonsense", 2, "invalid Ray address 'nonsense'; valid: auto, local, local:N, HOST:PORT"),
        ("local:0", 2, "invalid Ray address 'local:0'; valid: auto, local, local:N, HOST:PORT"),
    ],
)
def test_cli_bad_ray_address(
    address: str, code: int, message: str, seeds: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    args = ["index", str(seeds), "--index", str(tmp_path / "i"), "--embedder", "fake"]
    result = CliRunner().invoke(app, [*args, "--ray", address])
    assert result.exit_code == code
    assert message in result.output
    if code == 1:
        assert result.output.strip() == message  # one line
    assert not (tmp_path / "i").exists()  # no index left behind


# -- no cluster needed: the quick suite ------------------------------------------------------


def test_without_ray_the_error_names_the_extra(
    seeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a)
    )
    args = ["index", str(seeds), "--index", str(tmp_path / "i"), "--embedder", "fake"]
    result = CliRunner().invoke(app, [*args, "--ray", "local:2"])
    assert result.exit_code == 1
    assert result.output == (
        'error: indexing on Ray needs the ray extra: pip install "kornews-rag[ray]"\n'
    )
    assert not (tmp_path / "i").exists()


def test_a_local_cluster_that_does_not_start_is_one_line_and_shut_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray's 30 s wait for a node is retried with a longer one, then reported in one line;
    the nodes that did start are shut down."""
    import types

    from rag import cluster
    from rag.errors import RagError

    calls: list[str] = []

    class Cluster:
        address = "127.0.0.1:1"

        def __init__(self, shutdown_at_exit: bool) -> None:
            calls.append("new")

        def add_node(self, **args: object) -> None:
            calls.append("add")
            raise TimeoutError("Timed out waiting for node")

        def wait_for_nodes(self, timeout: float) -> None:
            calls.append(f"wait {timeout:.0f}")
            raise TimeoutError("Timed out while waiting for nodes to join.\nmore")

        def shutdown(self) -> None:
            calls.append("shutdown")

    fake = types.ModuleType("ray.cluster_utils")
    fake.Cluster = Cluster  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray.cluster_utils", fake)
    with pytest.raises(RagError) as e, cluster._local_cluster(2):
        pass
    assert str(e.value) == (
        "cannot start a local Ray cluster of 2 nodes: Timed out while waiting for nodes to join."
    )
    assert calls == ["new", "add", f"wait {cluster.LOCAL_START_TIMEOUT:.0f}", "shutdown"]


def test_rag_and_a_local_index_do_not_import_ray(seeds: Path, tmp_path: Path) -> None:
    script = f"""
import sys
from rag import Index
from rag.backends import register_backend
from rag.cli import app
from tests.conftest import FakeEmbedder
register_backend("fake", FakeEmbedder)
Index.create({str(tmp_path / "i")!r}, embedder="fake").add([{str(seeds)!r}])
print(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout == "[]\n"
