"""The shipped Prometheus rules (deploy/prometheus): promtool accepts them, its unit tests pass, and every
alert is tested both firing and not firing, with a severity, a summary, a description and a runbook
section in docs/monitoring.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import REPO_ROOT
from tests.operations.test_metrics import promtool

RULES = REPO_ROOT / "deploy" / "prometheus"
RULE_FILES = [RULES / "recording.yml", RULES / "alerts.yml"]
UNIT_TESTS = sorted((RULES / "tests").glob("*.yml"))
RUNBOOK = "https://github.com/caxton-dev/caxton/blob/main/docs/monitoring.md#"


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return rules(RULES / "alerts.yml")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False)


def test_promtool_checks_the_rules() -> None:
    checked = run("check", "rules", *map(str, RULE_FILES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_the_rules_unit_tests_pass() -> None:
    assert UNIT_TESTS
    tested = run("test", "rules", *map(str, UNIT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested silent"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"


def test_every_alert_says_how_bad_what_and_where_the_runbook_is() -> None:
    monitoring = (REPO_ROOT / "docs" / "monitoring.md").read_text()
    headings = {re.sub(r"[^a-z0-9]", "", line.lstrip("#").strip().lower())
                for line in monitoring.splitlines() if line.startswith("### ")}
    for rule in alerts():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
        runbook = rule["annotations"]["runbook_url"]
        assert runbook == RUNBOOK + rule["alert"].lower(), rule["alert"]
        assert rule["alert"].lower() in headings, f"docs/monitoring.md has no section {rule['alert']}"


def test_the_rules_use_only_series_the_engine_exports() -> None:
    metrics_doc = (REPO_ROOT / "docs" / "metrics.md").read_text()
    recorded = {rule["record"] for rule in rules(RULES / "recording.yml")}
    for path in RULE_FILES:
        for rule in rules(path):
            for name in re.findall(r"\b(caxton_[a-z_]+|caxton:[a-z_:0-9]+)", rule["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                assert name in recorded or f"`{base}`" in metrics_doc, f"{name} in {rule.get('alert') or rule['record']}"
