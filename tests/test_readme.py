"""The README's `--help` blocks are the real help text.

Regenerate them with ``python tests/test_readme.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```text\n\$ (rag [^\n]*--help)\n(.*?)```", re.DOTALL)


def help_text(command: str) -> str:
    args = command.split()[1:]
    result = CliRunner().invoke(
        app, args, env={"COLUMNS": "100", "TERM": "dumb"}, terminal_width=100
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_readme_help_blocks_are_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_INDEX", raising=False)  # help shows the default
    blocks = BLOCK.findall(README.read_text(encoding="utf-8"))
    assert {c for c, _ in blocks} >= {
        "rag --help",
        "rag index --help",
        "rag search --help",
        "rag ask --help",
    }
    for command, shown in blocks:
        assert shown == help_text(command), f"README block for `{command}` is out of date"


if __name__ == "__main__":  # rewrite the blocks in place
    text = README.read_text(encoding="utf-8")
    text = BLOCK.sub(lambda m: f"```text\n$ {m.group(1)}\n{help_text(m.group(1))}```", text)
    README.write_text(text, encoding="utf-8")
    sys.stdout.write("README help blocks updated\n")
