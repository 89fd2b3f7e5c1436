"""Diagnostics: problems found in the desired state, collected, never raised one by one."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Diagnostic(BaseModel):
    """One problem: what (code, message), where (file:line:column) and how to fix it (hint)."""

    model_config = ConfigDict(frozen=True)

    code: str
    severity: Severity
    file: str
    line: int | None = None
    column: int | None = None
    message: str
    hint: str | None = None

    @property
    def location(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.file, self.line or 0, self.column or 0, self.code)


def has_errors(diagnostics: list[Diagnostic], *, strict: bool = False) -> bool:
    blocking = {Severity.ERROR, Severity.WARNING} if strict else {Severity.ERROR}
    return any(d.severity in blocking for d in diagnostics)
