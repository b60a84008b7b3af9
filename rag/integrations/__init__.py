"""Adapters that expose this package to other frameworks, each imported only on demand."""
