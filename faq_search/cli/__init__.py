"""The ``faq-search`` command line: one module per command group, each parse -> one library call -> render."""

from faq_search.cli.app import app, main

__all__ = ["app", "main"]
