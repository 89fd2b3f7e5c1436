"""``caxton validate [PATH...]``: check agent files offline (pre-commit and CI gate).

Thin: resolves PATHs, calls ``caxton.desired.loader``, renders the report
(``caxton.validation.report``) to stdout and the summary to stderr. Exit 0
when valid, 1 when any error (any warning too with ``--strict``).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from caxton.cli.common import default_project, load_options, note
from caxton.errors import InvalidInput

if TYPE_CHECKING:
    from caxton.desired.loader import Options
    from caxton.desired.model import DesiredState
    from caxton.validation.report import Report


class Format(str, Enum):
    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"


def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Directories or agent files (.md, .toml, .wasm); default: agents/ here.",
                       show_default=False),
    ] = None,
    ref: Annotated[
        str | None,
        typer.Option("--ref", help="Validate PATH as it is at this git revision (e.g. HEAD~1); the work tree is untouched."),
    ] = None,
    output: Annotated[Format, typer.Option("--output", "-o", help="Report format.")] = Format.text,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Validate every file afresh; neither read nor update the cache.")
    ] = False,
) -> int:
    """Validate agent files and WASM modules; every problem in every file, in one run.

    \b
    Examples:
      caxton validate                       agents/ (or caxton.yaml's agents_dir)
      caxton validate agents/ --strict      warnings fail the run too
      caxton validate -o github agents/     annotations for GitHub Actions
      caxton validate --ref HEAD~1 agents/  the files as of the previous commit
    """
    from caxton.validation import report as reports

    states = _load(paths or [Path(default_project())], ref, load_options(cache=not no_cache))
    result = build_report(states, strict=strict)
    rendered = reports.RENDERERS[output.value](result)
    if rendered:
        typer.echo(rendered, nl=False)
    note(reports.summary(result))
    return 0 if result.valid else 1


def _load(paths: list[Path], ref: str | None, options: Options) -> list[DesiredState]:
    from caxton.desired import loader

    missing = [str(p) for p in paths if ref is None and not p.exists()]
    if missing:
        raise InvalidInput(f"no such file or directory: {', '.join(missing)}")
    directories = [p for p in paths if ref is not None or p.is_dir()]
    files = [p for p in paths if p not in directories]
    states = [loader.load(p, ref=ref, options=options) for p in directories]
    if files:
        states.append(loader.load_files(files, options=options))
    return states


def _display(root: str, file: str) -> str:
    """A path relative to the cwd when inside it (what editors and CI annotations expect)."""
    full = os.path.join(root, file) if file else root
    rel = os.path.relpath(full)
    return full if rel.startswith("..") else Path(rel).as_posix()


def _displayer(root: str) -> Callable[[str], str]:
    """``_display`` for many files of one root (one relpath for the root, not one per file)."""
    base = _display(root, "")
    if os.path.isabs(base) or "\\" in base:
        return lambda file: _display(root, file)
    return lambda file: posixpath.normpath(posixpath.join(base, file)) if file else base


def build_report(states: list[DesiredState], *, strict: bool) -> Report:
    """The report of one or more loaded desired states, paths relative to the cwd (also used by plan)."""
    from caxton.validation import report as reports

    diagnostics = tuple(d.model_copy(update={"file": _display(s.root, d.file)})
                        for s in states for d in s.diagnostics)
    if strict:
        diagnostics = reports.strictly(diagnostics)
    agents = tuple(reports.AgentLine(a.id, a.name, a.kind, a.version, shown(a.file), a.digest)
                   for s in states for shown in (_displayer(s.root),) for a in s.agents)
    sources = tuple(reports.SourceLine(_display(s.source, ""), _display(s.root, ""), s.digest, s.git_commit)
                    for s in states)
    return reports.Report(diagnostics, strict, agents, sources)
