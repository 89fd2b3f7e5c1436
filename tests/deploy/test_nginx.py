"""Three replicas on one PostgreSQL behind a real nginx running the shipped ``deploy/nginx/caxton.conf``, end to end
(issue 14, "Done when"): every ``caxton`` command goes through nginx's URL, like a user's.

- ``caxton apply`` of examples/quickstart through nginx: all three replicas serve it (no restarts) and answer.
- A canary promotes and a bad revision rolls back under load through nginx; ``caxton rollout status`` and
  ``caxton rollout abort`` through nginx, whichever replica answers.
- kill -9 of the rollout leader, and of a follower, mid-canary under load (WASM messages and config agents'
  conversations with the local OpenAI test server): no acknowledged message lost, every conversation continues
  with its whole history, the canary ends exactly once, the next apply goes through at once.
- PostgreSQL restarted under load in the middle of a canary: messages answered, applies refused with
  ``store_unavailable`` (exit 1) and nothing changed; then exactly one replica leads again, the canary ends once,
  the next apply works and every replica serves it.
- The event stream and large bodies pass through; SIGTERM then kill -9 of replicas under load fail no message.

One cluster for the module (its own PostgreSQL server, which one test stops); replicas a test stopped are started
again before the next test (the ``cluster`` fixture: ``Cluster.restore``).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.rollouts.test_durability import write_agent
from tests.support.cluster import HEADERS, Cluster, Traffic, caxton, running_cluster
from tests.support.nginx import SHIPPED, render
from tests.support.openai_server import OpenAITestServer
from tests.support.paths import REPO_ROOT
from tests.support.poll import wait_for
from tests.support.postgres import RestartablePostgres, create_database, own_pg_server  # noqa: F401  (fixture)

QUICKSTART = {"data-processor", "scorer", "summarizer", "word-count"}
TERMINAL = ("rollout_succeeded", "rollout_rolled_back", "rollout_cancelled", "rollout_superseded", "rollout_failed")
#: echo's versions, one per change the tests make (1 is created by ``with_test_agents``)
VERSIONS = itertools.count(2)
_SERVED = re.compile(r'^caxton_agent_messages_total\{[^}]*agent="scorer"[^}]*\} (\S+)$', re.MULTILINE)


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory, own_pg_server: RestartablePostgres,  # noqa: F811
                   openai_server: OpenAITestServer) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("cluster")
    with running_cluster(directory, create_database(own_pg_server.url), llm_url=openai_server.url) as running:
        applied = running.apply()  # the quickstart as it ships, through nginx
        assert applied.code == 0, applied.err + running.replicas.logs()
        yield running


@pytest.fixture
def cluster(module_cluster: Cluster) -> Cluster:
    """The module's cluster with its three replicas running (those an earlier test stopped started again)."""
    module_cluster.restore()
    return module_cluster


def canary(interval: str = "1s", steps: list[int] | None = None) -> dict[str, Any]:
    return {"strategy": "canary", "steps": steps or [30, 60, 100], "interval": interval,
            "analysis": {"min_requests": 5}}


def with_test_agents(cluster: Cluster) -> None:
    """Add ``echo`` (the rollout tests' WASM agent) and ``chat`` (a config agent on the OpenAI test server) to the
    quickstart, applied through nginx, unless there already."""
    agents = cluster.repo / "agents"
    if {"echo", "chat"} <= {a["name"] for a in cluster.get(cluster.running()[0], "/agents")["agents"]}:
        return
    if not (agents / "chat.md").exists():
        write_agent(cluster.repo, 1)
        write_chat(agents, "1.0.0")
    applied = cluster.apply()
    assert applied.code == 0, applied.err


def write_chat(agents: Path, version: str) -> None:
    spec = {"name": "chat", "version": version, "system_prompt": "You are chat.",
            "user_prompt_template": "{{ request }}", "llm": {"provider": "openai", "model": "tiny"}}
    (agents / "chat.md").write_text("---\n" + yaml.safe_dump(spec) + "---\n\nA conversation partner.\n")


def every_replica_serves(cluster: Cluster, agent: str, revision: int) -> None:
    """Every running replica answers ``agent``'s messages with ``revision`` (within a few seconds)."""
    for n in cluster.running():
        wait_for(lambda n=n: cluster.answered_by(n, agent)["revision"] == revision, 10,
                 f"replica {n} answering {agent} with revision {revision}")
    assert set(cluster.revisions(agent).values()) == {revision}


def rollout(cluster: Cluster) -> dict[str, Any]:
    """echo's newest rollout, as ``caxton rollout status echo -o json`` through nginx shows it."""
    shown = cluster.cli("rollout", "status", "echo", "-o", "json")
    assert shown.code == 0, shown.err
    found: dict[str, Any] = json.loads(shown.out)["rollouts"][0]
    return found


def rollout_events(cluster: Cluster, rollout_id: str) -> list[str]:
    """What happened to one rollout (its events' ``what``), from the store."""
    return [e["what"] for e in cluster.events("echo") if (e.get("data") or {}).get("rollout") == rollout_id]


def terminal_events(cluster: Cluster, rollout_id: str) -> list[str]:
    return [what for what in rollout_events(cluster, rollout_id) if what in TERMINAL]


def test_the_test_runs_the_shipped_config_with_only_its_addresses_and_port_replaced() -> None:
    shipped = SHIPPED.read_text().splitlines()
    rendered = render(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"], 4444).splitlines()
    changed = [(a, b) for a, b in zip(shipped, rendered, strict=True) if a != b]
    assert [b.strip() for _, b in changed] == [
        "server 127.0.0.1:1 max_fails=1 fail_timeout=2s;", "server 127.0.0.1:2 max_fails=1 fail_timeout=2s;",
        "server 127.0.0.1:3 max_fails=1 fail_timeout=2s;", "listen 127.0.0.1:4444;"]
    for needed in ("proxy_next_upstream error timeout non_idempotent;", "proxy_buffering off;",
                   "client_max_body_size 64m;", "proxy_read_timeout 300s;"):
        assert needed in SHIPPED.read_text(), needed


def _served(replica_url: str) -> float:
    text = httpx.get(replica_url + "/metrics", headers=HEADERS, timeout=10).text
    return sum(float(value) for value in _SERVED.findall(text))


def test_the_quickstart_applied_through_nginx_is_served_and_answered_by_all_three_replicas(cluster: Cluster) -> None:
    for n in range(3):  # applied through nginx once, no restart: every replica follows the store
        wait_for(lambda n=n: set(cluster.revisions("scorer")) == {0, 1, 2} and QUICKSTART <= {
            a["name"] for a in cluster.get(n, "/agents")["agents"]}, 10, f"replica {n} serving the quickstart")
    before = [_served(url) for url in cluster.replicas.urls]
    with httpx.Client(timeout=30) as client:
        replies = [client.post(f"{cluster.nginx}/api/v1/agents/scorer/messages", headers=HEADERS,
                               json={"content": {"text": f"message {n}"}}) for n in range(60)]
        summary = client.post(f"{cluster.nginx}/api/v1/agents/summarizer/messages", headers=HEADERS,
                              json={"content": "Caxton runs agents."})
    assert Counter(reply.status_code for reply in replies) == {200: 60}, replies[0].text
    assert all(reply.json()["reply"]["agent"] == "scorer" for reply in replies)
    assert summary.status_code == 200 and summary.json()["agent"] == "summarizer", summary.text
    gained = [_served(url) - was for url, was in zip(cluster.replicas.urls, before, strict=True)]
    assert sum(gained) == 60 and all(count > 0 for count in gained), gained
    again = cluster.apply()  # the same desired state again, through nginx: nothing to do
    assert again.code == 0 and "No changes" in again.out + again.err, again.out + again.err


def _readme_blocks() -> list[str]:
    """The ``sh`` blocks of the README's "Run three replicas behind nginx" (continuations joined)."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("### Run three replicas behind nginx", 1)[1].split("\n## ", 1)[0]
    return [block.replace("\\\n", " ") for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S)]


def test_the_readmes_three_replicas_commands_work_against_the_cluster(cluster: Cluster) -> None:
    setup, use = _readme_blocks()
    sed = next(line for line in setup.splitlines() if line.startswith("sed "))
    rendered = subprocess.run(["bash", "-c", sed.split("| sudo tee", 1)[0]], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True, timeout=30).stdout
    assert rendered == render([f"127.0.0.1:808{n}" for n in (1, 2, 3)], 8000)  # the shipped file, our addresses
    assert "caxton server start --port 808$n --data-dir data-$n &" in setup
    script = use.replace("http://127.0.0.1:8000", cluster.nginx).replace(
        "http://127.0.0.1:8081", cluster.replicas[0].url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    env.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
               PYTHONPATH=str(REPO_ROOT), CAXTON_API_TOKEN=cluster.replicas.token)
    ran = subprocess.run(["bash", "-e", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "No changes" in ran.stdout and '{"agent": "scorer", "score": ' in ran.stdout, ran.stdout
    assert '"leader": ' in ran.stdout, ran.stdout  # the replica's health names whether it leads


def test_a_canary_promotes_and_a_bad_revision_rolls_back_under_load_through_nginx(cluster: Cluster) -> None:
    with_test_agents(cluster)
    with Traffic(cluster.nginx).send("echo", threads=3) as traffic:
        traffic.wait_for(20)
        good = next(VERSIONS)
        write_agent(cluster.repo, good, canary())
        promoted = cluster.apply()  # follows the rollout (driven by the leader) to its end
        assert promoted.code == 0, promoted.out + promoted.err
        succeeded = rollout(cluster)
        assert succeeded["status"] == "succeeded" and succeeded["candidate_version"] == f"1.0.{good}", succeeded
        every_replica_serves(cluster, "echo", succeeded["candidate_revision"])

        write_agent(cluster.repo, next(VERSIONS), canary(), faulty=True)  # every 5th message fails
        rolled_back = cluster.apply()
        assert rolled_back.code == 3, rolled_back.out + rolled_back.err  # DESIGN.md: a rollout rolled back
        bad = rollout(cluster)
        assert bad["status"] == "rolled_back" and bad["stable_revision"] == succeeded["candidate_revision"], bad
        every_replica_serves(cluster, "echo", bad["stable_revision"])
        wait_for(lambda: terminal_events(cluster, bad["id"]), 10, "the rollback's event")
        assert terminal_events(cluster, bad["id"]) == ["rollout_rolled_back"]
        shown = cluster.cli("rollout", "status", "echo", "--limit", "1")  # as a user reads it, through nginx
        assert shown.code == 0 and "ROLLED BACK" in shown.out and "error_rate" in shown.out, shown.out
        traffic.wait_for(20)
    bad_errors = f'"agent_failure","message":"agent echo (revision {bad["candidate_revision"]})'
    assert [f for f in traffic.failures if bad_errors not in f] == [], traffic.failures[:5]  # only the bad one's
    assert set(traffic.revisions) >= {succeeded["stable_revision"], succeeded["candidate_revision"]}


def test_rollout_status_and_abort_through_nginx_whichever_replica_answers(cluster: Cluster) -> None:
    with_test_agents(cluster)
    stable = cluster.revisions("echo")[cluster.running()[0]]
    write_agent(cluster.repo, next(VERSIONS), canary(interval="60s", steps=[50, 100]))  # holds at 50 %
    detached = cluster.apply("--detach")
    assert detached.code == 0, detached.err
    wait_for(lambda: rollout(cluster)["status"] == "running", 20, "the canary running")
    shown = [rollout(cluster) for _ in range(3)]  # nginx sends each to the next replica: the same record
    assert len({(r["id"], r["status"], r["step"]) for r in shown}) == 1, shown
    wait_for(lambda: all(set(c) == {stable, shown[0]["candidate_revision"]} for c in [
        {int(k) for k in cluster.get(n, "/agents/echo")["traffic"]} for n in cluster.running()]), 10,
        "every replica splitting echo's traffic")

    aborted = cluster.cli("rollout", "abort", "echo")  # a follower forwards it to the leader
    assert aborted.code == 0, aborted.out + aborted.err
    ended = rollout(cluster)
    assert ended["id"] == shown[0]["id"] and ended["status"] in ("rolled_back", "cancelled"), ended
    every_replica_serves(cluster, "echo", stable)
    wait_for(lambda: terminal_events(cluster, ended["id"]), 10, "the abort's event")
    assert len(terminal_events(cluster, ended["id"])) == 1
    again = cluster.cli("rollout", "abort", "echo")  # nothing left to abort, on any replica
    assert again.code == 1 and "error" in again.err.lower(), again.out + again.err

    write_agent(cluster.repo, next(VERSIONS), canary(interval="60s", steps=[50, 100]))
    assert cluster.apply("--detach").code == 0
    wait_for(lambda: rollout(cluster)["status"] == "running" and rollout(cluster)["id"] != ended["id"], 20,
             "the next canary running")
    follower = next(n for n in cluster.running() if n != cluster.leader())  # the forwarding path, for sure
    from_follower = caxton("rollout", "abort", "echo", "--engine", cluster.replicas[follower].url,
                           "--token", cluster.replicas.token)
    assert from_follower.code == 0, from_follower.out + from_follower.err
    assert rollout(cluster)["status"] in ("rolled_back", "cancelled")
    every_replica_serves(cluster, "echo", stable)


def _history_sent(openai_server: OpenAITestServer, conversation: str, turns: list[str]) -> list[str]:
    """The user turns the model was sent with the conversation's last acknowledged turn (that turn included)."""
    last = turns[-1]
    for received in reversed(openai_server.requests):
        messages = received.body["messages"]
        if messages[-1]["content"] == last:
            return [m["content"] for m in messages if m["role"] == "user"]
    raise AssertionError(f"the model never received {last!r}")


def _once(turns: list[str]) -> list[str]:
    """``turns`` without a turn repeated right after itself."""
    return [turn for n, turn in enumerate(turns) if n == 0 or turn != turns[n - 1]]


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_kill_9_of_a_replica_mid_canary_under_load_loses_nothing_and_ends_the_canary_once(
        cluster: Cluster, openai_server: OpenAITestServer, role: str) -> None:
    with_test_agents(cluster)
    conversations = [f"{role}-talk-{n}" for n in range(3)]
    with Traffic(cluster.nginx).send("echo", threads=2).converse("chat", conversations) as traffic:
        traffic.wait_for(30)
        write_agent(cluster.repo, next(VERSIONS), canary(interval="2s"))  # >= 2 s left at its second step
        detached = cluster.apply("--detach")
        assert detached.code == 0, detached.err
        wait_for(lambda: rollout(cluster)["step"] >= 1, 30, "the canary at its second step")
        started = rollout(cluster)
        assert started["status"] == "running"
        leader = cluster.leader()
        victim = leader if role == "leader" else next(n for n in cluster.running() if n != leader)
        assert cluster.replicas.kill(victim) == -9
        wait_for(lambda: len(cluster.leaders()) == 1, 20, "one leader among the survivors")
        if role == "follower":
            assert cluster.leader() == leader  # a follower's death changes nothing about who leads
        traffic.wait_for(40)
        wait_for(lambda: rollout(cluster)["status"] != "running", 60, "the canary's end")
        talked = {c: len(turns) for c, turns in traffic.turns.items()}
        wait_for(lambda: all(len(traffic.turns[c]) >= talked[c] + 2 for c in conversations), 30,
                 "every conversation going on on the survivors")
    assert traffic.failures == [], traffic.failures[:5]  # every message answered: none lost, none refused
    ended = rollout(cluster)
    assert ended["id"] == started["id"] and ended["status"] in ("succeeded", "rolled_back"), ended
    wait_for(lambda: terminal_events(cluster, ended["id"]), 10, "the canary's terminal event")
    assert len(terminal_events(cluster, ended["id"])) == 1, terminal_events(cluster, ended["id"])
    for conversation, turns in traffic.turns.items():
        # Every acknowledged turn is in the store and the model was sent every earlier one with the last. A turn
        # running on the killed replica is retried by nginx on another (at least once): it may be kept twice.
        for kept in (cluster.stored_turns("chat", conversation), _history_sent(openai_server, conversation, turns)):
            assert _once(kept) == turns, (conversation, kept, turns)

    write_chat(cluster.repo / "agents", f"1.0.{next(VERSIONS)}")  # the apply lease is not wedged
    applied = cluster.apply("--timeout", "20")
    assert applied.code == 0, applied.out + applied.err + cluster.cli("lock", "status").out


def test_postgresql_restarted_under_load_and_mid_canary_messages_go_on_changes_are_refused_then_work(
        cluster: Cluster, own_pg_server: RestartablePostgres) -> None:  # noqa: F811
    with_test_agents(cluster)
    pids = [engine.proc.pid for engine in cluster.replicas if engine.proc is not None]
    with Traffic(cluster.nginx).send("scorer", threads=2).send("echo") as traffic:
        traffic.wait_for(30)
        write_agent(cluster.repo, next(VERSIONS), canary(interval="2s"))
        assert cluster.apply("--detach").code == 0
        wait_for(lambda: rollout(cluster)["step"] >= 1, 30, "the canary at its second step")
        started = rollout(cluster)
        newest = cluster.get(0, "/agents/echo/revisions")["revisions"][0]["revision"]
        version = next(VERSIONS)
        write_agent(cluster.repo, version)  # an immediate change, refused while the server is down
        resumed = rollout_events(cluster, started["id"]).count("rollout_resumed")  # 1 if a follower started it
        own_pg_server.stop()
        try:
            refused = cluster.apply()
            assert refused.code == 1, refused.out + refused.err  # DESIGN.md: an error
            assert "error: the PostgreSQL store at postgresql://" in refused.err and "is unavailable" in refused.err
            assert "without restarting the engine" in refused.err  # the hint
            lock = cluster.cli("lock", "status")
            assert lock.code == 1 and "is unavailable" in lock.err, lock.out + lock.err
            traffic.wait_for(60)  # every replica keeps answering through nginx
        finally:
            own_pg_server.start()
        # Back: one replica leads again (the leader lock and the LISTEN connections came back) and ends the canary.
        wait_for(lambda: len(cluster.leaders()) == 1, 20, "the rollout leadership taken again, by one replica")
        wait_for(lambda: rollout(cluster)["status"] != "running", 60, "the canary's end")
        applied = cluster.apply()  # the next apply works: no replica restarted
        assert applied.code == 0, applied.out + applied.err
        traffic.wait_for(30)
    assert traffic.failures == [] and set(traffic.statuses) == {200}, traffic.failures[:5]
    ended = rollout(cluster)
    assert ended["id"] == started["id"] and ended["status"] in ("succeeded", "rolled_back"), ended
    wait_for(lambda: terminal_events(cluster, ended["id"]), 10, "the canary's terminal event")
    assert len(terminal_events(cluster, ended["id"])) == 1, terminal_events(cluster, ended["id"])
    # in flight across the outage: the leader's session ended with the server, the next leader adopted it
    assert rollout_events(cluster, ended["id"]).count("rollout_resumed") == resumed + 1
    history = cluster.get(0, "/agents/echo/revisions")["revisions"]  # the refused apply made no revision
    assert (history[0]["revision"], history[0]["version"]) == (newest + 1, f"1.0.{version}"), history[:2]
    every_replica_serves(cluster, "echo", newest + 1)
    assert [engine.proc.pid for engine in cluster.replicas if engine.proc is not None] == pids


def test_the_event_stream_and_large_bodies_pass_through_nginx(cluster: Cluster) -> None:
    seen: list[str] = []
    with httpx.Client(timeout=30) as client:
        with client.stream("GET", cluster.nginx + "/api/v1/events/stream?after=0", headers=HEADERS) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():  # the stored events (the quickstart's deploys), then heartbeats
                seen.append(line)
                if sum(1 for got in seen if got.startswith(":")) >= 4:
                    break
        assert any("scorer" in line for line in seen if line.startswith("data:")), seen[:20]

        big_message = client.post(f"{cluster.nginx}/api/v1/agents/scorer/messages", headers=HEADERS,
                                  json={"content": {"text": "x" * (2 * 1024 * 1024)}})
        assert big_message.status_code == 413 and big_message.json()["error"]["code"], big_message.text[:300]
        big_plan = client.post(f"{cluster.nginx}/api/v1/applies", headers=HEADERS,
                               json={"plan_id": "too-big", "changes": [], "padding": "x" * (3 * 1024 * 1024)})
        # The engine's own answer (JSON), not nginx's 413 page: nginx lets plans up to max_apply_size through.
        assert big_plan.status_code != 413 and "error" in big_plan.json(), big_plan.text[:300]


def test_sigterm_then_kill_9_of_replicas_under_load_fail_no_message(cluster: Cluster) -> None:
    replicas = cluster.replicas
    with Traffic(cluster.nginx).send("scorer", threads=4) as traffic:
        traffic.wait_for(100)
        assert replicas.terminate(2) == 0, replicas.logs()  # drains: in-flight answered, then refuses
        traffic.wait_for(100)
        assert replicas.kill(1) == -9
        traffic.wait_for(200)
    assert traffic.failures == [], traffic.failures[:10]
    assert set(traffic.statuses) == {200}
