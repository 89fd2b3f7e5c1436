"""Validation of the desired state (pure: bytes and models in, diagnostics out)."""
