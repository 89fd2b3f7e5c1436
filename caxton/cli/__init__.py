"""The ``caxton`` command line: one module per command group, all thin.

Each command parses its options, calls the library, renders the result and
returns an exit code. Errors are mapped to exit codes in ``main`` only.
Heavy libraries (wasmtime, onnxruntime, httpx, fastapi) are imported inside
the commands that need them so ``caxton --help`` stays fast.
"""
