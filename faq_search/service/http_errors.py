"""Every error as a small JSON object whose ``error`` is one line naming the fix.

:class:`HttpError` is what the routes raise; :func:`install` registers the
handlers that turn it, pydantic's validation errors, Starlette's 404/405 and
library errors into that shape. Tracebacks go to the server log, never to
the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faq_search.errors import FaqSearchError, InputError

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import Response


MAX_DETAIL = 5  # validation problems listed in an error body; the first one is named in ``error``


class HttpError(Exception):
    """An error for the client: a status code and one line naming the fix."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one-line JSON shape."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app.add_exception_handler(HttpError, _on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_invalid)
    app.add_exception_handler(StarletteHTTPException, _on_starlette_error)
    app.add_exception_handler(FaqSearchError, _on_library_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_crash)


def _json(content: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    from fastapi.responses import JSONResponse

    return JSONResponse(content, status, headers=headers)


async def _on_http_error(request: Request, exc: HttpError) -> Response:
    return _json({"error": exc.message}, exc.status, exc.headers)


async def _on_invalid(request: Request, exc: Any) -> Response:
    errors = list(exc.errors())
    status, message = validation_message(errors)
    detail = [
        {
            "loc": [_clip(str(part)) for part in e.get("loc", ())],
            "msg": _clip(str(e.get("msg", ""))),
            "type": e.get("type"),
        }
        for e in errors[:MAX_DETAIL]
    ]
    return _json({"error": message, "detail": detail}, status)


def _clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, so an error never echoes a large input back."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def _on_starlette_error(request: Request, exc: Any) -> Response:
    message = {
        404: f"no endpoint {request.url.path}; see /docs for the API",
        405: f"{request.method} is not allowed on {request.url.path}; see /docs for the API",
    }.get(exc.status_code, str(exc.detail))
    return _json({"error": message}, exc.status_code, getattr(exc, "headers", None))


async def _on_library_error(request: Request, exc: FaqSearchError) -> Response:
    return _json({"error": str(exc)}, 422 if isinstance(exc, InputError) else 500)


async def _on_crash(request: Request, exc: Exception) -> Response:  # uvicorn logs the traceback
    return _json({"error": f"internal error ({type(exc).__name__}); see the server log"}, 500)


def validation_message(errors: list[Any]) -> tuple[int, str]:
    """(status, one line naming the fix) for pydantic's errors on a request body.

    ``[{"type": "missing", "loc": ("body", "question")}]`` -> ``(422, "question is required; ...")``.
    """
    if not errors:
        return 422, "the request is invalid; see /docs for the request schema"
    first = errors[0]
    kind = first.get("type")
    if kind == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "decode error")
        return 400, f"the body is not valid JSON ({reason}); send a JSON object, see /docs"
    loc = [_clip(str(part)) for part in first.get("loc", ()) if part != "body"]
    if kind in {"model_attributes_type", "dict_type"} and not loc:
        return 422, "the body must be a JSON object sent with 'Content-Type: application/json'; see /docs"
    where = ".".join(loc) or "body"
    if kind == "missing":
        return 422, f"{where} is required; see /docs for the request schema"
    if kind == "extra_forbidden":
        return 422, f"{where} is not a known field; see /docs for the request schema"
    if kind == "string_pattern_mismatch":
        return 422, f"{where} is empty or only white space; type some text"
    if kind == "string_too_short":
        return 422, f"{where} is empty; type some text"
    if kind == "string_too_long":
        return 422, f"{where} is too long: {first.get('msg', '').lower()}; shorten it"
    return 422, f"{where}: {first.get('msg', 'invalid')}; see /docs for the request schema"
