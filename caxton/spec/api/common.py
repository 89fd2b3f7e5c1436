"""What every wire model shares: the response base class, ``wire``, and the one error body.

Every refusal of the engine (a ``caxton.errors`` value, a malformed request,
a guard or limit refusal, an unexpected failure) answers ``ErrorBody``:
``{"error": {"code", "message", "hint"[, "details"]}}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue


#: A JSON object (an agent spec, a loop's status): keys to any JSON value.
JsonObject = dict[str, JsonValue]
#: The integers the engine stores (SQLite INTEGER); ids, serials and offsets outside are refused (422).
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
Int64 = Annotated[int, Field(ge=MIN_INT, le=MAX_INT)]


class WireModel(BaseModel):
    """A response body: typed fields, and any field a newer engine adds kept as it came."""

    model_config = ConfigDict(extra="allow")


def wire(model: BaseModel) -> Any:
    """``model`` as the JSON it was parsed from (fields absent on the wire stay absent)."""
    return model.model_dump(mode="json", exclude_unset=True)


class ErrorDetail(BaseModel):
    """What went wrong, where, and how to fix it."""

    code: str = Field(description="stable machine-readable code (e.g. not_found, lock_held, invalid_input)")
    message: str
    hint: str | None = None
    details: JsonValue = Field(None, description="more about the problem (e.g. every invalid field)")


class ErrorBody(BaseModel):
    """The one error answer of the engine, whatever the status."""

    error: ErrorDetail
