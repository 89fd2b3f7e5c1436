"""The order test files run in: the longest first, so the last files handed out are short ones.

``make test`` runs pytest-xdist with ``--dist loadfile --no-loadscope-reorder``: a worker takes a whole file
(module-scoped engines stay shared within it) and the next free worker takes the next file *in collection
order*. xdist's own reordering (files with the most tests first) put long files with few tests (the console's
browser tests, the end-to-end applies) at the end, leaving one worker alone with them while the other idled.
``heaviest_first`` moves the files below to the front, longest first (a stable sort: the order of the tests
inside a file, and of every other file, is unchanged). The list is measured, not guessed: the per-file sum of
test durations of a whole run (``pytest --durations=0``, or a per-test timeline), longest first; a file
missing from it only runs later, which costs nothing unless it is long. Re-measure when a file grows long.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

#: Longest first (per-file wall time of a whole run on 2 workers, most over 10 s on an idle machine).
LONGEST_FILES = (
    "tests/planning/test_apply_e2e.py",
    "tests/ui/test_console.py",
    "tests/security/test_auth_exposure.py",
    "tests/engine/test_openapi_contract.py",
    "tests/reconcile/test_watch.py",
    "tests/engine/test_event_stream.py",
    "tests/engine/test_process.py",
    "tests/reconcile/test_cli.py",
    "tests/deploy/test_container.py",
    "tests/security/test_tls.py",
    "tests/rollouts/test_independence.py",
    "tests/engine/test_postgres_store.py",
    "tests/cli/test_show.py",
    "tests/engine/test_storage_faults.py",
    "tests/cli/test_target.py",
    "tests/planning/test_progress.py",
    "tests/memory/test_api_cli.py",
    "tests/validation/test_hostile_files.py",
    "tests/security/test_datadir_lock.py",
    "tests/cli/test_up_config.py",
    "tests/cli/test_init.py",
    "tests/test_readme.py",
    "tests/security/test_auth_tokens.py",
    "tests/engine/test_tools_mcp.py",
    "tests/engine/test_mcp_hub.py",
    "tests/engine/test_cli.py",
    "tests/security/test_json_values.py",
    "tests/rollouts/test_watch.py",
    "tests/engine/test_budgets.py",
    "tests/memory/test_transfer.py",
    "tests/security/test_rate_limits.py",
    "tests/validation/test_cache.py",
    "tests/security/test_templates_runtime.py",
    "tests/operations/test_backup.py",
    "tests/engine/test_tools_api.py",
    "tests/cli/test_completion.py",
    "tests/cli/test_agent_names.py",
    "tests/security/test_sighup.py",
    "tests/memory/test_postgres.py",
    "tests/security/test_request_limits.py",
    "tests/operations/test_backup_schedule.py",
    "tests/operations/test_dashboard.py",
    "tests/engine/test_schema_guard.py",
    "tests/ui/test_console_auth.py",
    "tests/deploy/test_kubernetes.py",
    "tests/rollouts/test_apply_runner.py",
    "tests/memory/test_service.py",
)
_RANK = {path: rank for rank, path in enumerate(LONGEST_FILES)}


def heaviest_first(items: Sequence[pytest.Item]) -> list[pytest.Item]:
    """``items`` with the files of ``LONGEST_FILES`` first, in its order; otherwise as collected."""
    return sorted(items, key=lambda item: _RANK.get(item.nodeid.split("::", 1)[0], len(_RANK)))
