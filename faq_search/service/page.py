"""The search page at ``/`` and its script: static files from the package, with strict headers."""

from __future__ import annotations

from importlib import resources

ASSET_TYPES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_assets: dict[str, bytes] = {}


def asset(name: str) -> bytes:
    """The bytes of ``static/<name>``, read once; ``name`` must be a key of :data:`ASSET_TYPES`."""
    if name not in _assets:
        _assets[name] = resources.files("faq_search.service").joinpath("static", name).read_bytes()
    return _assets[name]
