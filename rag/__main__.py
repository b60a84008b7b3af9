"""The ``rag`` command (also ``python -m rag``): `rag.cli`, after starting the analysis of a
``rag search`` query (`rag.korean.search_early`), or the Kiwi of ``rag ask`` and ``rag chat``
(`rag.remote_kiwi.start`), in a child process before the command's modules load."""

from __future__ import annotations

import sys


def main() -> None:
    """Console entry point."""
    from . import korean, remote_kiwi
    from .sanitize import warnings_to_stderr

    warnings_to_stderr()  # before the early search, which may warn (a cache it cannot write)
    korean.search_early(sys.argv[1:])
    remote_kiwi.start(sys.argv[1:])
    from .cli import main as cli

    cli()


if __name__ == "__main__":
    main()
