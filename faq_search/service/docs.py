"""The API docs pages (``/docs``, ``/redoc``) with their assets served from this server, so they work offline.

FastAPI's default pages load Swagger UI and ReDoc from a CDN and are blank
without Internet access. The assets here come from the ``fastapi-offline``
package (Swagger UI 5 and ReDoc 2, both MIT licensed), served under
``/static-docs/`` from a fixed list of names.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.responses import Response

PREFIX = "/static-docs"
_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
_cache: dict[str, bytes] = {}


def add_routes(app: FastAPI) -> None:
    """``/docs``, ``/docs/oauth2-redirect``, ``/redoc`` and ``/static-docs/{name}``, outside the schema."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html

    from faq_search.service.http_errors import HttpError

    async def swagger() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="faq-search - Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon.png",
        )

    async def redirect() -> Response:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc() -> Response:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="faq-search - ReDoc",
            redoc_js_url=f"{PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{PREFIX}/favicon.png",
            with_google_fonts=False,
        )

    async def asset(name: str) -> Response:
        from fastapi.responses import Response

        if name not in _TYPES:
            raise HttpError(404, f"no docs asset {name!r}")
        return Response(_read(name), media_type=_TYPES[name], headers={"Cache-Control": "max-age=86400"})

    for path, endpoint in [("/docs", swagger), ("/docs/oauth2-redirect", redirect), ("/redoc", redoc)]:
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)
    app.add_api_route(PREFIX + "/{name}", asset, methods=["GET"], include_in_schema=False)


def _read(name: str) -> bytes:
    if name not in _cache:
        _cache[name] = resources.files("fastapi_offline").joinpath("static", name).read_bytes()
    return _cache[name]
