"""Pydantic models of everything Caxton reads and writes (no I/O).

The models are the single source of truth for the file formats: agent files,
``caxton.yaml``, diagnostics and (later) plans. ``schemas/`` holds the JSON
Schemas generated from them. This package imports nothing else of caxton.
"""
