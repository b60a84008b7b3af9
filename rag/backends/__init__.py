"""Embedding backends, one file each; heavy libraries are imported inside them."""
