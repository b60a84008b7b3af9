"""The ``rag`` command (also ``python -m rag``): `rag.cli`, after starting the analysis of a
``rag search`` query (`rag.korean.search_early`) before the command's modules load."""

from __future__ import annotations

import sys


def main() -> None:
    """Console entry point."""
    from . import korean

    korean.search_early(sys.argv[1:])
    from .cli import main as cli

    cli()


if __name__ == "__main__":
    main()
