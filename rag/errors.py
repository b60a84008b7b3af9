"""Errors the library raises; the CLI turns each into one line and exit code 1."""

from __future__ import annotations

from pathlib import Path


class RagError(Exception):
    """Base class for every error this package raises on purpose."""


def first_and_more(names: list[str]) -> str:
    """``names`` in an error message: the first, and how many more ("notes.txt and 3 more")."""
    return names[0] + (f" and {len(names) - 1} more" if len(names) > 1 else "")


class IndexNotFound(RagError):
    """No index exists at the given directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"no index at {path} (create one with: rag index PATH --index {path})")


class IndexExists(RagError):
    """An index was to be created where one exists (perhaps made by another process since
    the caller looked)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"an index already exists at {path}")


class IndexCorrupt(RagError):
    """The index directory exists but cannot be read back consistently."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"index at {path} is corrupt: {problem}")


class IndexLocked(RagError):
    """Another process, or another thread of this one, is writing to the same index."""

    def __init__(self, path: Path, by: str = "another process") -> None:
        self.path = path
        super().__init__(f"index at {path} is being written by {by}")


class EmbedderMismatch(RagError):
    """The embedder in use is not the one the index was built with."""

    def __init__(self, index_model: str, given_model: str, detail: str = "") -> None:
        self.index_model = index_model
        self.given_model = given_model
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"index was built with embedder {index_model!r} but {given_model!r} was given{extra}; "
            f"use --embedder {index_model} or build a new index"
        )


class BackendUnavailable(RagError):
    """A backend's optional dependency or model is missing."""


class InvalidOption(RagError):
    """A named mode or option has a value outside its valid set."""

    def __init__(self, name: str, value: object, valid: list[str] | tuple[str, ...]) -> None:
        self.name = name
        self.value = value
        self.valid = list(valid)
        super().__init__(f"invalid {name} {value!r}; valid: {', '.join(self.valid)}")


class IngestError(RagError):
    """One input (file or record) could not be turned into an article."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class QueryTooLong(RagError):
    """A query or question is longer than the limit (`rag.sanitize.MAX_QUERY_CHARS`)."""

    def __init__(self, what: str, length: int, limit: int) -> None:
        self.length = length
        self.limit = limit
        super().__init__(f"the {what} is {length:,} characters long; the limit is {limit:,}")


class MissingPromptVariable(RagError):
    """A prompt template uses a variable the caller did not supply."""

    def __init__(self, template: str, variable: str) -> None:
        self.template = template
        self.variable = variable
        super().__init__(f"prompt template {template!r} needs variable {variable!r}")


class LLMError(RagError):
    """The language model could not produce a (complete) answer.

    ``kind`` is one of: ``unreachable``, ``timeout`` (also: past the answer's deadline),
    ``auth``, ``rate_limit``, ``server``, ``bad_request``, ``context`` (the prompt exceeds
    the model's context), ``stream`` (the stream broke mid-answer).
    """

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class IndexWriteError(RagError):
    """The index could not be written (no space left, a read-only file system, no
    permission); the index on disk is left as it was."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = path
        super().__init__(message)


class WriteInterrupted(KeyboardInterrupt):
    """Ctrl-C during an index write; ``saved`` tells whether the new generation had already
    replaced the old one (the change is on disk) or not (the index is as it was)."""

    def __init__(self, path: Path, saved: bool) -> None:
        self.path = path
        self.saved = saved
        if saved:
            message = f"interrupted after the index at {path} was updated; the changes are saved"
        else:
            message = f"interrupted; the index at {path} was not changed"
        super().__init__(message)
