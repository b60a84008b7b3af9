"""``python -m tests.fake_rag ARGS``: the ``rag`` command with the fake embedder registered,
for tests that run it as a separate process (and kill it)."""

from rag.backends import register_backend
from rag.cli import main
from tests.conftest import FakeEmbedder

if __name__ == "__main__":
    register_backend("fake", FakeEmbedder)
    main()
