"""The one exception root of faq-search.

Library code raises subclasses of :class:`FaqSearchError` with messages that
name the fix; the CLI and the HTTP server translate them at the edge (one line
on stderr and a non-zero exit code, or a JSON error body). Nothing else in the
package catches them.
"""

from __future__ import annotations


class FaqSearchError(Exception):
    """Root of every error faq-search raises on purpose."""

    exit_code = 1


class InputError(FaqSearchError):
    """The user's input (a file, a column, an option, a question) is unusable."""

    exit_code = 2


class ModelError(FaqSearchError):
    """The encoder model cannot be found, loaded or run."""

    exit_code = 2


class BundleError(FaqSearchError):
    """An index bundle is missing, corrupt, of another version, or inconsistent."""

    exit_code = 2


class SettingsMismatchError(BundleError):
    """An encoder's settings differ from those the bundle was built with."""
