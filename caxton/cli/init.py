"""``caxton init [DIR]``: scaffold a desired-state repository that validates as written.

Writes ``caxton.yaml``, ``agents/assistant.md`` (one example config agent),
``.gitignore`` (the engine's ``.caxton/`` and saved plans ``*.plan.json``),
``.pre-commit-config.yaml`` (the ``caxton-validate`` hook) and a GitHub
Actions workflow (``.github/workflows/caxton.yml``, also shipped as
deploy/github/caxton.yml: validate with annotations and plan as markdown on
pull requests, ``apply --auto-approve`` on pushes to main, against
``CAXTON_ENGINE_URL``).
Refuses to overwrite: when any of these files exists, nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caxton import __version__
from caxton.cli.common import Output, OutputOption
from caxton.cli.views import render
from caxton.cli.views.project import Initialised
from caxton.errors import InvalidInput

CAXTON_YAML = """\
# Caxton project settings; every section is optional (schema: schemas/project.schema.json of caxton).
agents_dir: agents
environments:
  local:
    description: the engine `caxton up` (or `caxton server start`) runs on this machine
    engines:
      - http://127.0.0.1:8080
defaults:
  environment: local
"""

EXAMPLE_AGENT = """\
---
name: assistant
version: "0.1.0"
description: Answers short questions; a starting point for your own agents.
capabilities:
  - question-answering
llm:
  provider: offline
  temperature: 0.0
memory:
  enabled: false
system_prompt: |
  You are a helpful assistant. Answer in at most three sentences and say so when you do not know.
user_prompt_template: |
  {{ request }}
---

# Assistant

An example config agent written by `caxton init`. Edit it (bump `version`
with each change), or add more agents next to it: one `.md` file with YAML
frontmatter, or one `.toml` file, per agent. `caxton validate` checks them
offline; `caxton up` serves them.
"""

GITIGNORE = """\
# Caxton: the engine's data directory (`caxton up`, `caxton server start`) and saved plans
# (`caxton plan --out caxton.plan.json`): neither belongs in the desired state.
.caxton/
*.plan.json
"""

PRE_COMMIT = """\
# pre-commit (https://pre-commit.com): `pre-commit install`, then every commit is validated.
# The hook runs the caxton installed here (`pip install caxton`) on the whole repository, so a
# duplicate agent name across files is caught too.
repos:
  - repo: local
    hooks:
      - id: caxton-validate
        name: caxton validate
        entry: caxton validate
        language: system
        pass_filenames: false
        files: ^(caxton\\.yaml|agents/.+\\.(md|toml)|.+\\.wasm)$
        # args: [--strict]            # warnings fail the commit too
"""

WORKFLOW = """\
# Caxton for this desired-state repository (written by `caxton init`; the same file is Caxton's
# deploy/github/caxton.yml). Pull requests: validate (annotations on the files) and plan against the
# engine (the plan as markdown in the job summary). Pushes to main: apply what main holds, one at a time.
# Set the repository variable CAXTON_ENGINE_URL (e.g. https://caxton.example.com) to plan and apply, and
# the secret CAXTON_API_TOKEN to a token with the deploy role (`caxton token create ci --role deploy`).
# Pull requests from forks get no secrets: their plan fails on an engine that requires a token.
# Actions are pinned to full commit SHAs (the release in the comment): update both together.
name: caxton
on:
  push:
    branches: [main]
  pull_request:
permissions:
  contents: read
env:
  CAXTON_ENGINE_URL: ${{ vars.CAXTON_ENGINE_URL }}
  CAXTON_API_TOKEN: ${{ secrets.CAXTON_API_TOKEN }}
jobs:
  plan:
    runs-on: ubuntu-latest
    concurrency:
      group: caxton-plan-${{ github.ref }}
      cancel-in-progress: true
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - uses: actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0
        with:
          python-version: "3.11"
      - name: install
        run: pip install "caxton==%(version)s"
      - name: validate
        run: caxton validate --output github
      - name: plan
        if: env.CAXTON_ENGINE_URL != ''
        # --detailed-exitcode: 0 no changes, 1 error, 2 changes to apply (not a failure here)
        run: |
          code=0
          caxton plan --output markdown --detailed-exitcode >> "$GITHUB_STEP_SUMMARY" || code=$?
          if [ "$code" -eq 1 ]; then exit 1; fi
  apply:
    needs: plan
    if: github.event_name == 'push' && vars.CAXTON_ENGINE_URL != ''
    runs-on: ubuntu-latest
    concurrency:
      group: caxton-apply
      cancel-in-progress: false
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - uses: actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0
        with:
          python-version: "3.11"
      - name: install
        run: pip install "caxton==%(version)s"
      - name: apply
        # plans main again under the engine's apply lock, then applies it; exit 0 applied or nothing to do,
        # 1 a change failed, 3 a rollout rolled back, 4 still rolling out at --timeout (the engine carries on)
        run: caxton apply --auto-approve
""" % {"version": __version__}

#: Path (relative to DIR) -> content, in the order they are written and listed.
FILES: dict[str, str] = {
    "caxton.yaml": CAXTON_YAML,
    "agents/assistant.md": EXAMPLE_AGENT,
    ".gitignore": GITIGNORE,
    ".pre-commit-config.yaml": PRE_COMMIT,
    ".github/workflows/caxton.yml": WORKFLOW,
}


def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the repository (created when missing).")] = Path("."),
    output: OutputOption = Output.text,
) -> int:
    """Scaffold a desired-state repository: caxton.yaml, an example agent, .gitignore, pre-commit, CI."""
    _refuse_existing(directory)
    for relative, text in FILES.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    render(Initialised(directory, list(FILES)), output)
    return 0


def _refuse_existing(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise InvalidInput(f"{directory} exists and is not a directory", hint="pass a new or existing directory")
    present = [relative for relative in FILES if (directory / relative).exists()]
    if present:
        raise InvalidInput(f"{directory} already has {', '.join(present)}; nothing was written",
                           hint="run `caxton init` in a new directory, or move those files away first")
