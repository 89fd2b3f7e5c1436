"""deploy/systemd/caxton.service: systemd accepts it (``systemd-analyze verify`` and ``security``), it runs the real
``caxton server start`` with the data directory systemd makes, reloads with SIGHUP, drains within its stop timeout,
and is hardened, except MemoryDenyWriteExecute=, which would stop every WASM agent (shown with the kernel's
equivalent policy)."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from caxton.spec.project import ServerSettings
from tests.support.paths import REPO_ROOT
from tests.support.apt import ensure_command
from tests.support import cli_args

UNIT = REPO_ROOT / "deploy" / "systemd" / "caxton.service"
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "", "RestrictNamespaces": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "SystemCallArchitectures": "native",
    "SystemCallFilter": "~@privileged", "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "UMask": "0077",
}


def unit() -> configparser.ConfigParser:
    """The unit as systemd reads its keys (case kept, no interpolation; a repeated key: the last one)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",), comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart's caxton at an executable path here (verify checks that the binary exists)."""
    binary = tmp_path / "bin" / "caxton"
    binary.parent.mkdir()
    binary.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m caxton \"$@\"\n")
    binary.chmod(0o755)
    copy = tmp_path / "caxton.service"
    copy.write_text(UNIT.read_text().replace("/opt/caxton/bin/caxton", str(binary)))
    return copy


def test_systemd_analyze_verifies_the_unit_without_a_word(tmp_path: Path) -> None:
    analyze = ensure_command("systemd-analyze", package="systemd")
    done = subprocess.run([analyze, "verify", str(installed_copy(tmp_path))], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    # verify exits 0 on an unknown key or a bad value too, and says so on stderr: silence is the pass
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_systemd_analyze_rates_the_unit_well_hardened(tmp_path: Path) -> None:
    analyze = ensure_command("systemd-analyze", package="systemd")
    done = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(installed_copy(tmp_path))],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    found = re.search(r"Overall exposure level for caxton\.service: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) <= 2.0, done.stdout  # "OK" is below 5; the unit leaves little open


def test_the_unit_starts_the_engine_on_the_state_directory_and_reloads_with_sighup() -> None:
    service = unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/caxton/bin/caxton" and Path(argv[0]).is_absolute()
    assert cli_args.parse(argv[1:]) == ["server", "start"]  # the real CLI takes these options
    options = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert options == {"--config": "/etc/caxton/caxton.yaml", "--data-dir": f"/var/lib/{service['StateDirectory']}"}
    assert service["WorkingDirectory"] == options["--data-dir"]
    assert options["--data-dir"] in service["ReadWritePaths"].split()
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Type"] == "exec"  # the engine does not speak sd_notify: notify would never become active
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert float(service["TimeoutStopSec"]) > ServerSettings().drain_timeout  # a drain is not cut short
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_is_hardened_but_lets_wasmtime_map_its_code_executable() -> None:
    service = unit()["Service"]
    assert {key: service.get(key) for key in HARDENING} == HARDENING
    assert "@system-service" in re.findall(r"^SystemCallFilter=(.*)$", UNIT.read_text(), re.MULTILINE)
    assert service["User"] == "caxton" and "DynamicUser" not in service  # the tokens file is owned by caxton
    assert "MemoryDenyWriteExecute" not in service


MDWE_PROBE = """
import ctypes, sys
if sys.argv[1] == "mdwe":
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(3)
import wasmtime
engine = wasmtime.Engine()
module = wasmtime.Module(engine, '(module (func (export "f") (result i32) i32.const 42))')
store = wasmtime.Store(engine)
print(wasmtime.Instance(store, module, []).exports(store)["f"](store))
"""


def test_memory_deny_write_execute_would_stop_every_wasm_agent() -> None:
    """The kernel's MDWE (prctl PR_SET_MDWE, Linux 6.3+) refuses what systemd's MemoryDenyWriteExecute= refuses:
    making memory executable. wasmtime compiles each module and then must do exactly that."""
    plain = subprocess.run([sys.executable, "-c", MDWE_PROBE, "plain"], capture_output=True, text=True, timeout=60)
    assert (plain.returncode, plain.stdout) == (0, "42\n"), plain.stderr
    denied = subprocess.run([sys.executable, "-c", MDWE_PROBE, "mdwe"], capture_output=True, text=True, timeout=60)
    if denied.returncode == 3:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3): the policy cannot be shown here")
    assert denied.returncode == 1 and "unable to make memory executable" in denied.stderr, denied.stderr
