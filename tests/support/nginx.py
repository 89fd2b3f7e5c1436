"""A real nginx in front of engine replicas, running the shipped ``deploy/nginx/caxton.conf``.

    with running_nginx(tmp_path / "nginx", replicas.addresses) as url:   # http://127.0.0.1:PORT
        httpx.post(url + "/api/v1/agents/scorer/messages", ...)

``ensure_installed()`` installs Debian's ``nginx`` when the binary is absent (``tests.support.apt``: under its
file lock, never at import time; a failed install fails the test, it is never skipped). ``render`` is the
shipped file with only its upstream ``server`` addresses and its ``listen`` port replaced; the main
configuration around it keeps everything nginx writes (pid, logs, temporary bodies) in the test's directory,
runs in the foreground (no daemon) as the current user (``user``: its workers too, when that is root).
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support import processes
from tests.support.apt import ensure_command
from tests.support.paths import REPO_ROOT, free_port

SHIPPED = REPO_ROOT / "deploy" / "nginx" / "caxton.conf"
_SERVER = re.compile(r"^([ \t]*)server[ \t]+(\S+:\d+)([ \t][^;\n]*)?;[ \t]*\n", re.MULTILINE)
_LISTEN = re.compile(r"^([ \t]*)listen[ \t]+80;", re.MULTILINE)

MAIN = """worker_processes 1;
daemon off;
user {user};
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log combined;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/caxton.conf;
}}
"""


def ensure_installed() -> str:
    if Path("/usr/sbin/nginx").exists():
        return "/usr/sbin/nginx"  # root's PATH has /usr/sbin; another user's may not
    return ensure_command("nginx", package="nginx")


def render(upstreams: Sequence[str], port: int, shipped: str | None = None) -> str:
    """The shipped configuration with ``upstreams`` (host:port each) as its servers, listening on 127.0.0.1:port."""
    text = SHIPPED.read_text() if shipped is None else shipped
    servers = list(_SERVER.finditer(text))
    assert servers, f"{SHIPPED} has no upstream server lines"
    indent, parameters = servers[0].group(1), servers[0].group(3) or ""
    lines = "".join(f"{indent}server {address}{parameters};\n" for address in upstreams)
    text = text[:servers[0].start()] + lines + text[servers[-1].end():]
    text, listens = _LISTEN.subn(rf"\g<1>listen 127.0.0.1:{port};", text)
    assert listens == 1, f"{SHIPPED} must have exactly one `listen 80;`"
    return text


@contextmanager
def running_nginx(directory: Path, upstreams: Sequence[str]) -> Iterator[str]:
    """nginx on a free 127.0.0.1 port proxying to ``upstreams``; yields its URL; stopped (SIGQUIT) afterwards."""
    binary = ensure_installed()
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (directory / "caxton.conf").write_text(render(upstreams, port))
    main = directory / "nginx.conf"
    main.write_text(MAIN.format(dir=directory, user=pwd.getpwuid(os.getuid()).pw_name))
    checked = subprocess.run([binary, "-t", "-p", str(directory), "-c", str(main)], capture_output=True, text=True,
                             check=False)
    if checked.returncode != 0:
        pytest.fail(f"nginx -t refused the configuration: {checked.stderr}")
    log = (directory / "nginx.out").open("wb")
    proc = subprocess.Popen([binary, "-p", str(directory), "-c", str(main)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(port, proc, directory)
        yield url
    finally:
        processes.stop(proc)  # SIGTERM: nginx's fast shutdown
        log.close()


def error_log(directory: Path) -> str:
    try:
        return (directory / "error.log").read_text(errors="replace")
    except OSError:
        return ""


def _wait_listening(port: int, proc: subprocess.Popen[bytes], directory: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"nginx exited with {proc.returncode}: {error_log(directory)[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/nginx-probe", timeout=1.0)
            return  # any answer (the replicas' 404, or nginx's 502): nginx listens
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not listen on {port} in 30s: {error_log(directory)[-2000:]}")
