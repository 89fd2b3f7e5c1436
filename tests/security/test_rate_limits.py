"""Rate limits (issue 12, item 4): budgets per token (per client address without one), 429 + Retry-After.

The buckets are tested with an injected clock (no sleeping); floods go through real engines over HTTP.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from caxton.engine import auth
from caxton.engine.ratelimit import MAX_CALLERS, MESSAGES, MUTATIONS, Limiter, budget_of, caller_of
from caxton.rules import tokens as token_format
from caxton.spec.project import RateLimits
from tests.engine.helpers import config_spec, deploy_body
from tests.support.engine import EngineProcess

V1 = "/api/v1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(**given: Any) -> RateLimits:
    return RateLimits.model_validate(given)


# --- the buckets -------------------------------------------------------------------------------
def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    limiter = Limiter(limits(messages_per_second=2, messages_burst=3), clock)
    assert [limiter.check(MESSAGES, "a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.check(MESSAGES, "a") == pytest.approx(0.5)  # one token comes back in 1/2 s
    clock.now += 0.25
    assert limiter.check(MESSAGES, "a") == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.check(MESSAGES, "a") == 0.0
    clock.now += 60  # refills up to the burst, never beyond
    assert [limiter.check(MESSAGES, "a") > 0 for _ in range(4)] == [False, False, False, True]


def test_callers_and_budgets_are_separate() -> None:
    limiter = Limiter(limits(messages_per_second=1, messages_burst=1, mutations_per_second=1, mutations_burst=1),
                      Clock())
    assert limiter.check(MESSAGES, "token:alice") == 0.0
    assert limiter.check(MESSAGES, "token:alice") > 0
    assert limiter.check(MESSAGES, "token:bob") == 0.0
    assert limiter.check(MUTATIONS, "token:alice") == 0.0


def test_a_rate_of_zero_is_off_and_reconfiguring_applies_new_budgets() -> None:
    limiter = Limiter(limits(messages_per_second=0, mutations_per_second=1, mutations_burst=1), Clock())
    assert all(limiter.check(MESSAGES, "a") == 0.0 for _ in range(10_000))
    assert limiter.check(MUTATIONS, "a") == 0.0 and limiter.check(MUTATIONS, "a") > 0
    limiter.configure(limits(messages_per_second=1, messages_burst=2, mutations_per_second=0))
    assert [limiter.check(MESSAGES, "a") > 0 for _ in range(3)] == [False, False, True]
    assert all(limiter.check(MUTATIONS, "a") == 0.0 for _ in range(100))


def test_refilled_buckets_are_forgotten_when_callers_pile_up() -> None:
    clock = Clock()
    limiter = Limiter(limits(messages_per_second=10, messages_burst=1), clock)
    for n in range(MAX_CALLERS):
        limiter.check(MESSAGES, f"addr:{n}")
    clock.now += 1.0  # every bucket has refilled: they hold nothing worth keeping
    limiter.check(MESSAGES, "addr:late")
    assert limiter.check(MESSAGES, "addr:late") > 0  # the newcomer is still limited
    assert len(limiter._state[1][MESSAGES]) == 1


def test_a_flood_of_addresses_never_grows_the_buckets_past_the_cap() -> None:
    limiter = Limiter(limits(messages_per_second=0.001, messages_burst=1), Clock())  # nothing refills
    for n in range(3 * MAX_CALLERS):
        assert limiter.check(MESSAGES, f"addr:{n}") == 0.0  # each new address gets its burst
    held = limiter._state[1][MESSAGES]
    assert MAX_CALLERS // 2 <= len(held) <= MAX_CALLERS
    assert limiter.check(MESSAGES, f"addr:{3 * MAX_CALLERS - 1}") > 0  # the newest are still remembered


def test_which_calls_spend_which_budget() -> None:
    assert budget_of("POST", "/api/v1/agents/a/messages") == MESSAGES
    for method, path in [("POST", "/api/v1/agents/a/suspend"), ("PUT", "/api/v1/agents/a"),
                         ("DELETE", "/api/v1/agents/a"), ("POST", "/api/v1/applies"), ("PATCH", "/x")]:
        assert budget_of(method, path) == MUTATIONS, (method, path)
    for method, path in [("GET", "/api/v1/agents/a/messages"), ("GET", "/api/v1/state"), ("HEAD", "/metrics")]:
        assert budget_of(method, path) is None


def test_the_caller_is_the_principal_else_the_address() -> None:
    principal = auth.Principal("alice", frozenset({"message"}), None)
    assert caller_of({"state": {"principal": principal}, "client": ("127.0.0.1", 5)}) == "token:alice"
    assert caller_of({"state": {"principal": None}, "client": ("127.0.0.2", 5)}) == "addr:127.0.0.2"
    assert caller_of({"client": None}) == "addr:unknown"


# --- real engines --------------------------------------------------------------------------------
def write_config(path: Path, rate_limits: dict[str, Any], tokens_file: Path | None = None) -> Path:
    security: dict[str, Any] = {"rate_limits": rate_limits}
    if tokens_file is not None:
        security["tokens_file"] = str(tokens_file)
    path.write_text(yaml.safe_dump({"security": security}), encoding="utf-8")
    return path


def tokens_file(path: Path, *names: str) -> dict[str, str]:
    """A tokens file with one message+deploy+read token per name; returns name -> token."""
    made: dict[str, str] = {}
    entries = []
    for name in names:
        token, token_id = token_format.new_token()
        entries.append(token_format.file_entry(name, token_id, token_format.hash_token(token), ["read", "message", "deploy"],
                                       None, None))
        made[name] = token
    path.write_text(yaml.safe_dump({"tokens": entries}, sort_keys=False), encoding="utf-8")
    return made


def flood(client: httpx.Client, method: str, path: str, count: int, **kwargs: Any) -> list[httpx.Response]:
    return [client.request(method, path, **kwargs) for _ in range(count)]


def assert_refused(response: httpx.Response, budget: str) -> None:
    assert response.status_code == 429, response.text
    retry = response.headers["retry-after"]
    assert retry.isdigit() and int(retry) >= 1
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and error["details"]["budget"] == budget
    assert f"security.rate_limits.{budget}_per_second" in error["hint"]


@pytest.fixture(scope="module")
def token_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EngineProcess, dict[str, str]]]:
    root = tmp_path_factory.mktemp("tokens")
    tokens = tokens_file(root / "tokens.yaml", "alice", "bob", "carol")
    # One token back every 20 s: a spent budget stays spent for this module's tests, however slow the machine
    # (at 0.5/s, a 2 s pause between a flood and the next request refilled one and let it through).
    config = write_config(root / "caxton.yaml", {"messages_per_second": 0.05, "messages_burst": 5,
                                                  "mutations_per_second": 0.05, "mutations_burst": 4},
                          root / "tokens.yaml")
    engine = EngineProcess(root / "data", config=config)
    engine.start()
    with httpx.Client(base_url=engine.url, headers={"Authorization": f"Bearer {tokens['carol']}"}) as carol:
        assert carol.put(f"{V1}/agents/echo", json=deploy_body(config_spec("echo"))).status_code == 200
    yield engine, tokens
    engine.terminate()


def client_for(engine: EngineProcess, token: str | None = None, address: str = "127.0.0.1") -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=engine.url, headers=headers,
                        transport=httpx.HTTPTransport(local_address=address), timeout=30)


def test_a_token_flooding_messages_gets_429_while_another_token_keeps_its_budget(
    token_engine: tuple[EngineProcess, dict[str, str]],
) -> None:
    engine, tokens = token_engine
    with client_for(engine, tokens["alice"]) as alice, client_for(engine, tokens["bob"]) as bob:
        sent = flood(alice, "POST", f"{V1}/agents/echo/messages", 12, json={"content": "hi"})
        codes = [r.status_code for r in sent]
        assert codes[:5] == [200] * 5 and codes.count(429) >= 6, codes
        assert set(codes) <= {200, 429}
        assert_refused(sent[-1], MESSAGES)
        assert bob.post(f"{V1}/agents/echo/messages", json={"content": "hi"}).status_code == 200
        assert alice.get(f"{V1}/agents/echo").status_code == 200  # reads are never limited
        metrics = bob.get("/metrics").text
    line = next(x for x in metrics.splitlines() if x.startswith('caxton_rate_limited_total{budget="messages"}'))
    assert float(line.split()[-1]) >= 6


def test_mutations_have_their_own_budget(token_engine: tuple[EngineProcess, dict[str, str]]) -> None:
    engine, tokens = token_engine
    with client_for(engine, tokens["carol"]) as carol:
        calls = flood(carol, "DELETE", f"{V1}/agents/missing", 6)  # the budget is spent before routing
        codes = [r.status_code for r in calls]
        assert codes[:3] == [404] * 3 and codes[-1] == 429, codes  # burst 4, one spent deploying
        assert_refused(calls[-1], MUTATIONS)
        assert carol.post(f"{V1}/agents/echo/messages", json={"content": "still here"}).status_code == 200


def test_the_cli_reports_a_rate_limit_as_one_line(token_engine: tuple[EngineProcess, dict[str, str]],
                                                  run_cli: Any) -> None:
    engine, tokens = token_engine
    with client_for(engine, tokens["alice"]) as alice:  # alice's budget is spent (earlier test or now)
        flood(alice, "POST", f"{V1}/agents/echo/messages", 6, json={"content": "x"})
    result = run_cli("agents", "send", "echo", "hello", "--engine", engine.url, "--token", tokens["alice"])
    assert result.code == 1
    assert "error: rate limit of messages exceeded for this caller; retry in" in result.err
    assert "hint: slow down, or raise security.rate_limits.messages_per_second" in result.err


def test_without_tokens_each_client_address_has_its_own_budget_and_sighup_reloads_it(tmp_path: Path) -> None:
    config = write_config(tmp_path / "caxton.yaml", {"messages_per_second": 0.5, "messages_burst": 3})
    engine = EngineProcess(tmp_path / "data", config=config)
    engine.start()
    try:
        with client_for(engine) as first, client_for(engine, address="127.0.0.2") as second:
            assert first.put(f"{V1}/agents/echo", json=deploy_body(config_spec("echo"))).status_code == 200
            codes = [r.status_code for r in flood(first, "POST", f"{V1}/agents/echo/messages", 6, json={"content": 1})]
            assert codes[:3] == [200] * 3 and codes[-1] == 429, codes
            assert second.post(f"{V1}/agents/echo/messages", json={"content": 1}).status_code == 200

            write_config(config, {"messages_per_second": 0.5, "messages_burst": 20})
            assert engine.proc is not None
            engine.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while first.post(f"{V1}/agents/echo/messages", json={"content": 1}).status_code == 429:
                assert time.monotonic() < deadline, engine.log_text()
                time.sleep(0.05)
            codes = [r.status_code for r in flood(first, "POST", f"{V1}/agents/echo/messages", 15, json={"content": 1})]
            assert codes == [200] * 15, codes  # the new burst of 20 applies
    finally:
        engine.terminate()
