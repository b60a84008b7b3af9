"""Prompt templates (one .txt file each), shipped as the `rag.prompts` package."""
