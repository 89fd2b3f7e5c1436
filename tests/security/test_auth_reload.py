"""SIGHUP re-reads the tokens file of a real engine: old token refused, new one accepted; a bad file is kept out."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.security.auth_tokens import AuthEngine, auth_engine, write_tokens

STATE = "/api/v1/state"


def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _hup(served: AuthEngine) -> None:
    assert served.engine.proc is not None
    served.engine.proc.send_signal(signal.SIGHUP)


def test_sighup_reloads_the_tokens_file(tmp_path: Path) -> None:
    with auth_engine(tmp_path) as served:
        old = served.tokens["reader"]
        assert served.call("GET", STATE, old).status_code == 200  # verified and cached before the reload
        fresh = write_tokens(served.tokens_file, {"new-reader": (["read"], None, None)})
        _hup(served)
        _until(lambda: served.call("GET", STATE, fresh["new-reader"]).status_code == 200, "the new token works")
        assert served.call("GET", STATE, old).status_code == 401
        assert served.engine.running

        served.tokens_file.write_text("tokens: [this is: not valid\n")
        _hup(served)
        _until(lambda: "reload" in served.engine.log_text() and "kept the old tokens" in served.engine.log_text(),
               "the bad file is logged")
        assert served.call("GET", STATE, fresh["new-reader"]).status_code == 200  # the old (good) tokens stay
        assert served.call("GET", STATE).status_code == 401
        assert served.engine.running
