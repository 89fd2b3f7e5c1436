"""The WASM sandbox (wasmtime): compile, limit and run agent modules.

Contract used by the engine (implemented in ``caxton.sandbox.runtime``):

- ``load_module(wasm: bytes, policy: SecurityPolicy, *, max_module_size=None) -> LoadedModule``
  compiles (cached by sha256, so redeploys and restarts are cheap) and checks
  imports against the policy and the ABI exports; raises ``caxton.errors.SandboxError``.
  ``LoadedModule`` has ``sha256``, ``size``, ``imports``, ``exports``.
  ``set_cache_dir(path)`` adds an on-disk cache of compiled artifacts (use a
  directory under the engine's data dir: artifacts are trusted as code).
- ``WasmAgentRuntime(module, limits, policy, *, agent, revision, log)``
  holds the instance(s) of one revision: ``start()`` instantiates and runs
  ``caxton_init`` (raises ``SandboxError``), ``handle(envelope: dict) -> Any``
  returns the JSON reply or raises ``WasmFailure`` (a ``caxton.errors.AgentFailure``
  with a ``reason``), ``stop()``, and ``stats()`` for health (failures,
  restarts, circuit state, fuel, memory). Failures restart the instance with
  exponential backoff and open a circuit breaker.
  Optional keywords: ``pool_size`` (instances serving in parallel, each made when
  messages first overlap that far; default 1, so one instance sees messages in order;
  the engine passes ``caxton.engine.wasm_budget.pool_size(spec)``), ``health=HealthSettings(...)``
  (failure threshold, cool-down, backoff), ``max_reply_size`` (default
  ``limits.max_message_size``). ``log(level, text)`` receives the module's
  ``caxton.log`` lines (debug/info/warn/error) and ``[sandbox] ...`` events.
- ``WasmFailure.reason`` is one of trap, out_of_fuel, timeout, memory_limit,
  message_too_large, reply_too_large, bad_reply, agent_error, circuit_open;
  ``http_status`` is 503 for circuit_open, 413 for message_too_large, 504 for
  timeout, 502 otherwise. ``handle`` raises ``InvalidInput`` for an envelope
  that is not JSON-serializable.
- ``caxton.sandbox.engines.shutdown_tickers()`` stops the epoch ticker threads
  at engine shutdown (``stop()`` of the last runtime of an engine also does).

Modules: ``engines`` (wasmtime Engine per compiler and denied-feature set, epoch
ticker), ``modules`` (load, compiler choice, cache, checks; section layout and export
trimming before compile by ``caxton.rules.wasmbin``), ``host`` (caxton.log, caxton.clock_ms, WASI),
``instance`` (one store, the ABI call), ``fastcall`` (fast export calls and
memory copies), ``health`` (backoff, circuit breaker), ``runtime`` (the pool).
Importing this package does not import wasmtime; ``caxton.sandbox.runtime`` does.
"""
