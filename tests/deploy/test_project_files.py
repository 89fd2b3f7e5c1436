"""The repository's own papers: the license pyproject.toml declares is the one in LICENSE, the changelog keeps
Keep a Changelog's shape, SECURITY.md points to the security guide, and docs/operations.md names every artifact
under deploy/ (and the Dockerfile) that it describes."""

from __future__ import annotations

import re
import tomllib

from tests.support.paths import REPO_ROOT


def test_the_declared_license_is_the_license_file() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    text = (REPO_ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    labels = (REPO_ROOT / "Dockerfile").read_text()
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels


def test_the_changelog_keeps_a_changelog() -> None:
    text = (REPO_ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n") and "https://keepachangelog.com/en/1.1.0/" in text
    versions = re.findall(r"^## \[([^\]]+)\]", text, re.MULTILINE)
    assert versions[0] == "Unreleased"
    sections = set(re.findall(r"^### (\w+)$", text, re.MULTILINE))
    assert sections and sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
    assert all(f"[{version}]: " in text for version in versions)  # every version heading has its link


def test_security_policy_says_how_to_report_and_points_to_the_guide() -> None:
    text = (REPO_ROOT / "SECURITY.md").read_text()
    assert "## Reporting a vulnerability" in text and "## Supported versions" in text
    for target in re.findall(r"\]\(([^)]+)\)", text):
        assert (REPO_ROOT / target).is_file(), target


def test_operations_doc_names_every_deploy_artifact() -> None:
    deploying = (REPO_ROOT / "docs" / "operations.md").read_text().split("## Deploying", 1)[1]
    artifacts = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "deploy").glob("*/*") if p.is_file()}
    named = {a for a in artifacts if a in deploying or a.rsplit("/", 1)[0] + "/`" in deploying}
    assert named == artifacts and "`Dockerfile`" in deploying and "`deploy/compose.yaml`" in deploying
