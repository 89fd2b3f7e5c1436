"""The WASM sandbox (wasmtime): compile, limit and run agent modules.

Contract used by the engine (implemented in ``caxton.sandbox.runtime``):

- ``load_module(wasm: bytes, policy: SecurityPolicy) -> LoadedModule``
  compiles (cached by sha256, so redeploys and restarts are cheap) and checks
  imports against the policy; raises ``caxton.errors.SandboxError``.
- ``WasmAgentRuntime(module, limits, policy, *, agent, revision, log)``
  holds the instance(s) of one revision: ``start()`` instantiates and runs
  ``caxton_init`` (raises ``SandboxError``), ``handle(envelope: dict) -> Any``
  returns the JSON reply or raises ``WasmFailure`` (a ``caxton.errors.AgentFailure``
  with a ``reason``), ``stop()``, and ``stats()`` for health (failures,
  restarts, circuit state, fuel, memory). Failures restart the instance with
  exponential backoff and open a circuit breaker.
"""
