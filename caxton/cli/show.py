"""``caxton show PLAN``: render a saved plan (from ``caxton plan --out``) without an engine.

Thin: read the file, parse it (``caxton.planning.planfile``: refuses other
format versions and malformed files), render it as ``caxton plan`` does, as
text or, with ``--output json``, as the plan JSON itself (``markdown``: as
``caxton plan --output markdown``, without the desired state's warnings).
Exit 0, or 1 when the file cannot be read or is not a plan.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from caxton.cli.common import PlanFormat, PlanFormatOption
from caxton.cli.views.plans import rendered
from caxton.errors import InvalidInput


def show(
    plan: Annotated[Path, typer.Argument(help="A plan file written by `caxton plan --out`.", show_default=False)],
    output: PlanFormatOption = PlanFormat.text,
) -> int:
    """Show a saved plan, as `caxton plan` printed it (its JSON with --output json, markdown with -o markdown)."""
    from caxton.planning import planfile

    saved = planfile.loads(_read(plan), where=str(plan))
    sys.stdout.write(rendered(saved, output))
    return 0


def _read(path: Path) -> str:
    hint = "pass a file written by `caxton plan --out FILE`"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"plan file {path} does not exist", hint=hint) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read plan file {path}: {error}", hint=hint) from None
