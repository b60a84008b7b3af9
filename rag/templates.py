"""Prompt templates: one file each under `prompts/`, shipped inside the package.

Templates use ``$name`` placeholders (`string.Template`); rendering with a variable missing
raises `MissingPromptVariable` instead of sending a half-filled prompt to a model.
"""

from __future__ import annotations

import functools
from importlib import resources
from string import Template

from .errors import MissingPromptVariable


@functools.cache
def load(name: str) -> str:
    """The text of ``prompts/<name>.txt``."""
    return resources.files("rag.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")


def render(name: str, **variables: object) -> str:
    """Fill template ``name`` with ``variables``.

    Raises:
        MissingPromptVariable: The template uses a variable not given.
    """
    try:
        return Template(load(name)).substitute(variables)
    except KeyError as e:
        raise MissingPromptVariable(name, str(e.args[0])) from None
