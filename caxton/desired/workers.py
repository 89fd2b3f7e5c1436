"""Validate agent files, in forked worker processes when there are many of them.

Parsing and checking a file is pure CPU work (YAML, pydantic, Jinja2), so a
large repository is split across the machine's cores. Workers are forked (they
inherit the loaded code and the files already read) and hand each result
back in the cache's JSON form (:func:`caxton.desired.cache.to_entry`). Forking
a process that runs other threads can deadlock the child (wasmtime's compiler
pool is one), so workers are used only while the process has a single thread;
only the CLI asks for ``jobs > 1``, the engine never does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from caxton.desired import cache
from caxton.validation import modules, results

#: Below this many files a worker's start-up costs more than it saves.
MIN_FILES_PER_WORKER = 100

_work: tuple[Sequence[results.AgentFile], modules.ModuleReader] | None = None


def default_jobs() -> int:
    """``$CAXTON_JOBS`` when set (1 turns workers off), else one worker per core this process may use."""
    configured = os.environ.get("CAXTON_JOBS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def validate(
    items: Sequence[results.AgentFile], read_module: modules.ModuleReader, jobs: int = 1
) -> list[tuple[results.FileResult, cache.Entry | None]]:
    """Each item's result, in order, with its cache entry when a worker produced one."""
    workers = min(jobs, len(items) // MIN_FILES_PER_WORKER)
    if workers < 2 or not hasattr(os, "fork") or not _single_threaded():
        return _in_process(items, read_module)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    global _work
    _work = (items, read_module)
    chunks = [range(start, len(items), workers) for start in range(workers)]
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            done = list(pool.map(_validate_chunk, chunks))
    except (OSError, BrokenProcessPool):  # no fork possible, or a worker died: do it here
        return _in_process(items, read_module)
    finally:
        _work = None
    by_index: dict[int, cache.Entry] = {}
    for chunk, entries in zip(chunks, done, strict=True):
        by_index.update(zip(chunk, entries, strict=True))
    answers: list[tuple[results.FileResult, cache.Entry | None]] = []
    for index, item in enumerate(items):
        entry = by_index[index]
        result = cache.from_entry(item, entry, read_module)
        # The module changed between the worker's read and ours: check it again here.
        answers.append((result, entry) if result is not None else (_validate_file(item, read_module), None))
    return answers


def _in_process(
    items: Sequence[results.AgentFile], read_module: modules.ModuleReader
) -> list[tuple[results.FileResult, cache.Entry | None]]:
    return [(_validate_file(item, read_module), None) for item in items]


def _validate_file(item: results.AgentFile, read_module: modules.ModuleReader) -> results.FileResult:
    from caxton.validation import pipeline

    return pipeline.validate_file(item, read_module)


def _single_threaded() -> bool:
    """True when this process runs one thread (native ones included, where Linux tells)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        import threading

        return threading.active_count() == 1


def _validate_chunk(indices: range) -> list[cache.Entry]:
    if _work is None:  # pragma: no cover - only reachable if a worker were spawned, not forked
        raise RuntimeError("validation worker started without work")
    items, read_module = _work
    return [cache.to_entry(_validate_file(items[i], read_module)) for i in indices]
