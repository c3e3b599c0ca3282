"""The HTTP API's request and response bodies, as pydantic models (what ``/openapi.json`` publishes)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from faq_search.service.config import MAX_K, MAX_QUESTION_CHARS, MAX_TEXTS

TEXT_PATTERN = r"[^\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
"""A text must hold a character that is not white space (Python's ``str.isspace``, which the engine strips),
spelled out so that JSON Schema, Python and the server's validator agree on it."""

Text = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        pattern=TEXT_PATTERN,
        description=f"1 to {MAX_QUESTION_CHARS} characters, not only white space.",
    ),
]


FilterText = Annotated[
    str | None,
    Field(
        max_length=MAX_QUESTION_CHARS,
        description="Only entries whose metadata pass this filter are ranked, e.g. "
        "`plan = enterprise and country in (DE, AT)`: `=`, `!=`, `in (...)`, `not in (...)`, `<`, `<=`, `>`, `>=` "
        "(numbers), `and`, `or`, `not`, parentheses, 'quoted values'. Fields are the index's filterable columns "
        "(`GET /indexes`); an unknown field or value is a 422 naming the known ones.",
        examples=["plan = enterprise and country in (DE, AT)"],
    ),
]


def _whole_number(value: Any) -> Any:
    """JSON Schema's integer: ``5`` and ``5.0`` pass, ``"5"``, ``true`` and ``5.5`` do not (no coercion)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number, not a string, a boolean or a fraction")
    return value


Count = Annotated[int, BeforeValidator(_whole_number), Field(strict=False)]


class _Body(BaseModel):
    """Request bodies: unknown fields are refused, and types are strict (no "5" for 5, no false for 0)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class AskRequest(_Body):
    question: Text = Field(description="The customer's question.")
    k: Count = Field(5, ge=1, le=MAX_K, description="How many answers to return.")
    min_score: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Leave out answers whose confidence is below this (default: the index's calibrated threshold).",
    )
    filter: FilterText = None


class AskBatchRequest(_Body):
    questions: list[Text] = Field(min_length=1, max_length=MAX_TEXTS)
    k: Count = Field(5, ge=1, le=MAX_K)
    min_score: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    filter: FilterText = None


class EmbedRequest(_Body):
    texts: list[Text] = Field(min_length=1, max_length=MAX_TEXTS)


class ReloadRequest(_Body):
    """An empty JSON object: requiring JSON keeps a cross-site form post from triggering a reload."""


class MatchOut(BaseModel):
    """``Match.to_dict()``: ``score`` ranks (cosine, plus BM25 evidence when the index fuses it)."""

    model_config = ConfigDict(extra="allow")

    rank: int
    score: float
    cosine: float | None = None
    lexical: float | None = None
    field: str
    id: str
    question: str | None
    answer: str
    metadata: dict[str, Any]


class AskResponse(BaseModel):
    question: str
    answered: bool
    min_score: float | None
    matches: list[MatchOut]
    question_id: str | None = Field(
        None, description="With `serve --log`: the id the question is logged under, for `POST /feedback`."
    )


class AskBatchResponse(BaseModel):
    results: list[AskResponse]


class EmbedResponse(BaseModel):
    model: str
    layer: str
    pooling: str
    dimension: int
    vectors: list[list[float]]
    truncated: list[bool] = Field(
        description="Per text: longer than the model's window, so only its beginning was embedded (as `embed` does)."
    )


class FilterField(BaseModel):
    name: str
    type: str = Field(description="string, number, boolean or list")
    values: list[str] | None = Field(None, description="The known values (string, list and boolean fields).")


class IndexListing(BaseModel):
    """One index of ``GET /indexes``."""

    model_config = ConfigDict(extra="allow")

    name: str
    entries: int
    vectors: int
    index_type: str
    model: str
    generation: int
    filters: list[FilterField]


class IndexesResponse(BaseModel):
    indexes: list[IndexListing]
    single: str | None = Field(description="The index `/ask` serves when the server holds exactly one, else null.")


class ErrorResponse(BaseModel):
    error: str
