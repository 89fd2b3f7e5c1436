"""wasmtime Engines of the sandbox and the epoch tickers that drive their timeouts.

One ``wasmtime.Engine`` exists per (compiler, set of denied WASM features): a
module compiled by one engine only runs in stores of that engine. Every engine
has fuel metering and epoch interruption on, and the proposals Caxton's ABI v1
does not need (GC, function references, exceptions, stack switching, custom
page sizes) off. The compiler is ``cranelift`` (optimizing: the fastest code,
~1 ms of compile per KB of code) or ``winch`` (wasmtime's baseline compiler:
~8x faster to compile, code ~1.5-2.5x slower on compute-heavy loops; x86-64
only, ``WINCH_AVAILABLE``); ``caxton.sandbox.modules`` picks one per module.
Both insert the same fuel and epoch checks (tests/sandbox run the malicious
modules under both).

Each engine owns one ``EpochTicker``: a daemon thread that increments the
engine's epoch every ``EPOCH_TICK_S`` seconds while at least one runtime holds
it (``acquire``/``release``), so wall-clock limits cost one thread per engine,
not one per agent. Called by ``caxton.sandbox.modules`` (compile) and
``caxton.sandbox.runtime`` (stores, tickers).
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import wasmtime

from caxton.errors import SandboxError

#: The compilers an engine can use (wasmtime ``Config.strategy``).
CRANELIFT = "cranelift"
WINCH = "winch"
COMPILERS: tuple[str, ...] = (CRANELIFT, WINCH)
#: Winch has an x86-64 backend only (aarch64 is in development in wasmtime 50).
WINCH_AVAILABLE: bool = platform.machine().lower() in ("x86_64", "amd64")
#: ``wasmtime_strategy_t`` of the C API (wasmtime-py's ``Config.strategy`` setter knows no "winch").
_STRATEGY_CODES: dict[str, int] = {CRANELIFT: 1, WINCH: 2}

#: Interval of the epoch ticker; a wall-clock limit is honoured to within one tick.
EPOCH_TICK_S = 0.005

#: Features of ``SecurityPolicy.denied_features`` and the Config switches that turn them off.
FEATURE_SWITCHES: dict[str, tuple[str, ...]] = {
    "simd": ("wasm_simd", "wasm_relaxed_simd"),  # wasmtime refuses simd off with relaxed-simd on
    "relaxed-simd": ("wasm_relaxed_simd",),
    "threads": ("wasm_threads", "shared_memory"),
    "bulk-memory": ("wasm_bulk_memory",),
    "multi-memory": ("wasm_multi_memory",),
    "memory64": ("wasm_memory64",),
    "tail-call": ("wasm_tail_call",),
}

#: Proposals outside ABI v1 that are always off (GC memory would escape the memory limit).
ALWAYS_OFF: tuple[str, ...] = (
    "wasm_gc",
    "wasm_function_references",
    "wasm_exceptions",
    "wasm_stack_switching",
    "wasm_custom_page_sizes",
    "wasm_wide_arithmetic",
    "wasm_component_model",
)

#: Features this wasmtime build cannot turn off (doing so aborts the process).
UNSUPPORTED_DENIALS: dict[str, str] = {
    "reference-types": "wasmtime 50 requires reference-types for its component-model-async support",
}


class EpochTicker:
    """Increments one engine's epoch on a daemon thread while anyone holds it."""

    def __init__(self, engine: wasmtime.Engine, interval_s: float = EPOCH_TICK_S) -> None:
        self._engine = engine
        self._interval = interval_s
        self._lock = threading.Lock()
        self._holders = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval_s(self) -> float:
        return self._interval

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def acquire(self) -> None:
        """Register one holder; the first one starts the thread."""
        with self._lock:
            self._holders += 1
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="caxton-epoch-ticker", daemon=True
                )
                self._thread.start()

    def release(self) -> None:
        """Drop one holder; the last one stops and joins the thread."""
        with self._lock:
            self._holders = max(0, self._holders - 1)
            if self._holders == 0:
                self._halt()

    def shutdown(self) -> None:
        """Stop the thread whatever the holder count (engine shutdown, tests)."""
        with self._lock:
            self._holders = 0
            self._halt()

    def _halt(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=1.0)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval):
            self._engine.increment_epoch()


@dataclass(frozen=True)
class SandboxEngine:
    """A configured wasmtime Engine, its ticker, its denied features (``key``) and compiler."""

    key: tuple[str, ...]
    engine: wasmtime.Engine = field(compare=False)
    ticker: EpochTicker = field(compare=False)
    compiler: str = CRANELIFT

    @property
    def cache_key(self) -> tuple[str, ...]:
        """What a compiled artifact depends on besides the wasmtime version: compiler + features."""
        return (self.compiler, *self.key)


_ENGINES: dict[tuple[str, ...], SandboxEngine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_key(denied_features: Iterable[str]) -> tuple[str, ...]:
    """The denied-feature part of an engine's key: sorted and de-duplicated."""
    return tuple(sorted(set(denied_features)))


def get_engine(denied_features: Iterable[str], *, compiler: str = CRANELIFT) -> SandboxEngine:
    """The shared engine for this compiler and set of denied features (created on first use)."""
    key = engine_key(denied_features)
    with _ENGINES_LOCK:
        found = _ENGINES.get((compiler, *key))
        if found is None:
            engine = wasmtime.Engine(make_config(key, compiler=compiler))
            found = SandboxEngine(key=key, engine=engine, ticker=EpochTicker(engine), compiler=compiler)
            _ENGINES[found.cache_key] = found
        return found


def make_config(denied: tuple[str, ...], *, compiler: str = CRANELIFT) -> wasmtime.Config:
    """A Config with fuel and epochs on, every denied feature off, and the given compiler."""
    _refuse_unsupported(denied)
    config = wasmtime.Config()
    _set_compiler(config, compiler)
    config.consume_fuel = True
    config.epoch_interruption = True
    for switch in ALWAYS_OFF:
        setattr(config, switch, False)
    for feature in denied:
        for switch in FEATURE_SWITCHES.get(feature, ()):
            setattr(config, switch, False)
    return config


def _set_compiler(config: wasmtime.Config, compiler: str) -> None:
    if compiler not in _STRATEGY_CODES:
        raise ValueError(f"unknown compiler {compiler!r} (use one of {', '.join(COMPILERS)})")
    if compiler == WINCH and not WINCH_AVAILABLE:
        raise ValueError(f"the Winch compiler has no backend for {platform.machine()}")
    # the C API call behind Config.strategy (whose Python setter accepts no "winch")
    from wasmtime import _bindings

    _bindings.wasmtime_config_strategy_set(config.ptr(), _STRATEGY_CODES[compiler])


def _refuse_unsupported(denied: tuple[str, ...]) -> None:
    for feature in denied:
        if feature in UNSUPPORTED_DENIALS:
            raise SandboxError(
                f"security_policy.denied_features lists {feature!r}, which this engine cannot enforce",
                hint=f"remove {feature!r} from denied_features ({UNSUPPORTED_DENIALS[feature]})",
                details={"feature": feature},
            )
        if feature not in FEATURE_SWITCHES:
            raise SandboxError(
                f"unknown WASM feature {feature!r} in security_policy.denied_features",
                hint="use one of: " + ", ".join(sorted([*FEATURE_SWITCHES, *UNSUPPORTED_DENIALS])),
            )


def forget_engines() -> None:
    """Drop the cached engines (at exit; a later call builds new ones)."""
    with _ENGINES_LOCK:
        _ENGINES.clear()


def shutdown_tickers() -> None:
    """Stop every engine's ticker thread (engine shutdown and test teardown)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
    for item in engines:
        item.ticker.shutdown()
