"""The gold set: questions with their documents and facts, read from a JSONL file and
checked whole before a run (`rag eval`, `rag.evaluate.evaluate`)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from .errors import RagError
from .sanitize import check_query


class GoldItem(BaseModel):
    """One gold question (a line of the gold JSONL file)."""

    id: str
    question: str
    lang: str | None = None
    type: str | None = None
    answerable: bool = True
    answer: str = ""
    docs: list[str] = Field(default_factory=list)
    facts: list[list[str]] = Field(default_factory=list)

    @field_validator("question")
    @classmethod
    def _askable(cls, question: str) -> str:
        """A question the index would refuse to search (too long, not UTF-8) stops the run
        before it starts; it used to stop it at that question, keeping nothing."""
        try:
            check_query(question, "question")
        except RagError as e:
            raise ValueError(str(e)) from None
        return question


def load_gold(path: str | Path) -> list[GoldItem]:
    """Read a gold JSONL file (one `GoldItem` a line; blank lines are skipped).

    Raises:
        RagError: The file is missing, a line is not a valid item, or an id repeats.
    """
    try:
        # JSONL lines end at \n only: a JSON string may hold U+2028, which splitlines splits.
        lines = Path(path).read_text(encoding="utf-8-sig").split("\n")
    except OSError as e:
        raise RagError(f"cannot read gold file {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise RagError(f"gold file {path} is not UTF-8 (byte {e.start:,})") from None
    items: list[GoldItem] = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                items.append(GoldItem.model_validate(json.loads(line)))
            except ValidationError as e:
                error = e.errors()[0]
                field = ".".join(map(str, error["loc"]))
                problem = f"{field}: {error['msg']}" if field else error["msg"]
                raise RagError(f"{path}:{number}: not a gold item: {problem}") from None
            except (ValueError, RecursionError) as e:  # not JSON; an int of 4,300+ digits
                problem = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise RagError(f"{path}:{number}: not a gold item: {problem}") from None
    repeated = [i for i, n in Counter(x.id for x in items).items() if n > 1]
    if repeated:
        raise RagError(f"{path}: question id {repeated[0]!r} occurs twice")
    if not items:
        raise RagError(f"{path}: no gold questions")
    return items


def gold_digest(items: Sequence[GoldItem]) -> str:
    """A hash of the gold questions' content, independent of file formatting."""
    canonical = json.dumps([i.model_dump() for i in items], ensure_ascii=False, sort_keys=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
