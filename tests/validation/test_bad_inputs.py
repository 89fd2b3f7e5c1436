"""Each bad input gets a precise diagnostic (code, file, line) and exit 1 — never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.validation.conftest import GOOD_WAT, VALID_MD, wasm, wasm_agent


@dataclass(frozen=True)
class Case:
    id: str
    files: dict[str, str | bytes]
    code: str
    file: str = "agents/a.md"
    line: int | None = None
    hint: str | None = None
    column: int | None = None


def md(body: str, doc: str = "") -> str:
    return f"---\n{body}---\n{doc}"


BASE = 'name: alpha\nversion: "1.0.0"\nsystem_prompt: "You help."\n'
MCP = ("mcp_servers:\n  - name: files\n    url: http://127.0.0.1:9/mcp\n    headers:\n"
       "      Authorization: {env: FILES_TOKEN}\n    allowed_tools: [read, list]\n")
MCP_HOST = "security_policy:\n  allowed_hosts: [127.0.0.1]\n"  # MCP's host: without it, CX326
GOOD = wasm(GOOD_WAT)
WC_TOOL = "tool:\n  description: counts words\n"


def mod(wat: str) -> bytes:
    return wasm(wat)


CASES = [
    # syntax and files
    Case("yaml-unclosed-flow", {"agents/a.md": md('name: [alpha\nversion: "1.0.0"\n')}, "CX110", line=3),
    Case("yaml-tab-indent", {"agents/a.md": md(BASE + "memory:\n\tenabled: true\n")}, "CX110", line=6),
    Case("yaml-bad-colon", {"agents/a.md": md(BASE + "description: a: b\n")}, "CX110", line=5),
    Case("no-frontmatter", {"agents/a.md": "name: alpha\n"}, "CX112", line=1),
    Case("unclosed-frontmatter", {"agents/a.md": "---\n" + BASE}, "CX113"),
    Case("frontmatter-list", {"agents/a.md": md("- a\n- b\n")}, "CX114", line=2),
    Case("frontmatter-scalar", {"agents/a.md": md("just text\n")}, "CX114", line=2),
    Case("duplicate-yaml-key", {"agents/a.md": md(BASE + "name: beta\n")}, "CX115", line=5),
    Case("toml-syntax", {"agents/a.toml": 'name = "alpha"\nversion = 1.0.0\n'}, "CX111", file="agents/a.toml", line=2),
    Case("toml-unclosed-string", {"agents/a.toml": 'name = "alpha\n'}, "CX111", file="agents/a.toml", line=1),
    Case("empty-file", {"agents/a.md": ""}, "CX102"),
    Case("whitespace-file", {"agents/a.md": "\n\n   \n"}, "CX102", line=1),
    Case("binary-file", {"agents/a.md": b"---\nname: a\x00b\n---\n"}, "CX103", line=2),
    Case("non-utf8", {"agents/a.md": "---\nname: caf\xe9\n---\n".encode("latin-1")}, "CX104", line=2),
    Case("huge-file", {"agents/a.md": md(BASE, "x" * (1024 * 1024 + 10))}, "CX105"),
    # required fields and types
    Case("missing-name", {"agents/a.md": md('version: "1.0.0"\nsystem_prompt: hi\n')}, "CX201", line=1),
    Case("missing-version", {"agents/a.md": md("name: alpha\nsystem_prompt: hi\n")}, "CX201", line=1),
    Case("missing-system-prompt", {"agents/a.md": md('name: alpha\nversion: "1.0.0"\n')}, "CX201",
         hint="system_prompt"),
    Case("missing-module", {"agents/a.md": md('name: w\nversion: "1.0.0"\nkind: wasm\n')}, "CX201"),
    Case("missing-nested-url", {"agents/a.md": md(BASE + "rollout:\n  analysis:\n    prometheus:\n      query: up\n"
                                                  "      threshold: 1\n")}, "CX201", line=7),
    Case("unknown-field", {"agents/a.md": md(BASE + "toolz: []\n")}, "CX202", line=5, hint="did you mean 'tools'?"),
    Case("unknown-nested-field", {"agents/a.md": md(BASE + "resource_limits:\n  max_conversation: 5\n")}, "CX202",
         line=6, hint="did you mean 'max_conversations'?"),
    Case("unknown-toml-field", {"agents/a.toml": 'name = "alpha"\nversion = "1.0.0"\nsystem_prompt = "hi"\n'
                                                 '[memory]\nscop = "agent"\n'}, "CX202", file="agents/a.toml",
         line=5, hint="did you mean 'scope'?"),
    Case("wrong-type-float", {"agents/a.md": md(BASE + "llm:\n  temperature: hot\n")}, "CX203", line=6),
    Case("wrong-type-list", {"agents/a.md": md(BASE + "tools: csv_parser\n")}, "CX203", line=5),
    Case("wrong-type-mapping", {"agents/a.md": md(BASE + "memory: yes\n")}, "CX203", line=5),
    Case("version-unquoted-float", {"agents/a.md": md("name: alpha\nversion: 1.0\nsystem_prompt: hi\n")}, "CX206",
         line=3),
    Case("bad-semver", {"agents/a.md": md('name: alpha\nversion: "1.0"\nsystem_prompt: hi\n')}, "CX206", line=3),
    Case("bad-semver-leading-zero", {"agents/a.md": md('name: alpha\nversion: "01.2.3"\nsystem_prompt: hi\n')},
         "CX206", line=3),
    Case("bad-name", {"agents/a.md": md('name: 9lives\nversion: "1.0.0"\nsystem_prompt: hi\n')}, "CX205", line=2),
    Case("bad-capability", {"agents/a.md": md(BASE + "capabilities:\n  - Data Processing\n")}, "CX207", line=6),
    Case("bad-kind", {"agents/a.md": md(BASE + "kind: wasmm\n")}, "CX208", line=5, hint="did you mean 'wasm'?"),
    Case("bad-size-unit", {"agents/a.md": md(BASE + "resource_limits:\n  max_message_size: 10XB\n")}, "CX209",
         line=6),
    Case("bad-duration-unit", {"agents/a.md": md(BASE + "resource_limits:\n  response_timeout: 5 weeks\n")},
         "CX209", line=6),
    Case("bad-memory-scope", {"agents/a.md": md(BASE + "memory:\n  scope: team\n")}, "CX211", line=6),
    Case("bad-strategy", {"agents/a.md": md(BASE + "rollout:\n  strategy: canery\n")}, "CX211", line=6,
         hint="did you mean 'canary'?"),
    Case("steps-not-100", {"agents/a.md": md(BASE + "rollout:\n  steps: [10, 50]\n")}, "CX204", line=6),
    Case("temperature-range", {"agents/a.md": md(BASE + "llm:\n  temperature: 5\n")}, "CX204", line=6),
    Case("bad-sha256-format", {"agents/a.md": wasm_agent(extra="sha256: abc\n"), "wasm/m.wasm": GOOD}, "CX204",
         line=6),
    # semantics
    Case("duplicate-identity", {"agents/a.md": md('name: DataProcessor\nversion: "1.0.0"\nsystem_prompt: hi\n'),
                                "agents/b.md": md('name: data-processor\nversion: "2.0.0"\nsystem_prompt: hi\n')},
         "CX301", file="agents/b.md", line=2),
    Case("unknown-tool", {"agents/a.md": md(BASE + "tools:\n  - csv_parsr\n")}, "CX302", line=6,
         hint="did you mean 'csv_parser'?"),
    # tools the engine does not implement are refused (issue 15 dropped them from the registry)
    Case("dropped-tool", {"agents/a.md": md(BASE + "tools:\n  - shell\n")}, "CX302", line=6,
         hint="built-in tools are"),
    Case("dropped-tool-near-a-real-one", {"agents/a.md": md(BASE + "tools:\n  - json_validatorr\n")}, "CX302",
         line=6, hint="did you mean 'json_validator'?"),
    # WASM tools (a WASM agent with a tool: section)
    Case("wasm-tool-typo", {"agents/a.md": md(BASE + "tools:\n  - wasm-on\n"),
                            "agents/w.md": wasm_agent(extra=WC_TOOL), "wasm/m.wasm": GOOD}, "CX302", line=6,
         hint="did you mean 'wasm-one'?"),
    Case("wasm-agent-without-tool-section", {"agents/a.md": md(BASE + "tools:\n  - wasm-one\n"),
                                             "agents/w.md": wasm_agent(), "wasm/m.wasm": GOOD}, "CX302", line=6,
         hint="add a tool: section"),
    Case("config-agent-as-tool", {"agents/a.md": md(BASE + "tools:\n  - beta\n"),
                                  "agents/b.md": md('name: beta\nversion: "1.0.0"\nsystem_prompt: hi\n')},
         "CX302", line=6, hint="only built-in tools and WASM agents"),
    Case("tool-schema-invalid", {"agents/w.md": wasm_agent(extra="tool:\n  description: d\n  parameters:\n"
                                                           "    type: object\n    required: yes\n"),
                                 "wasm/m.wasm": GOOD}, "CX320", file="agents/w.md", line=9, hint="json-schema"),
    Case("tool-schema-not-an-object", {"agents/w.md": wasm_agent(extra="tool:\n  description: d\n  parameters:\n"
                                                                 "    type: string\n"),
                                       "wasm/m.wasm": GOOD}, "CX320", file="agents/w.md", line=9,
         hint="type: object"),
    Case("tool-shadows-a-built-in", {"agents/w.md": wasm_agent(extra="tool:\n  description: d\n").replace(
        "name: wasm-one", "name: Calculator"), "wasm/m.wasm": GOOD}, "CX321", file="agents/w.md", line=2),
    Case("tool-limits-range", {"agents/a.md": md(BASE + "resource_limits:\n  max_tool_calls: 5000\n")}, "CX204",
         line=6),
    Case("bad-allowed-host", {"agents/a.md": md(BASE + "security_policy:\n  allowed_hosts: ['http://x/']\n")},
         "CX204", line=6),
    # MCP servers (docs/tools.md): tool references, URLs, header values only from the environment
    Case("mcp-unknown-server", {"agents/a.md": md(BASE + MCP + "tools: [file.read]\n" + MCP_HOST)}, "CX323",
         line=11, hint="did you mean 'files'?"),
    Case("mcp-undeclared-server", {"agents/a.md": md(BASE + "tools: [files.read]\n")}, "CX323", line=5,
         hint="declare it under mcp_servers"),
    Case("mcp-tool-not-allowed", {"agents/a.md": md(BASE + MCP + "tools: [files.delete]\n" + MCP_HOST)}, "CX324",
         line=11, hint="add it to mcp_servers[files].allowed_tools (allowed: read, list)"),
    Case("mcp-tool-typo", {"agents/a.md": md(BASE + MCP + "tools: [files.lst]\n" + MCP_HOST)}, "CX324", line=11,
         hint="did you mean 'list'?"),
    Case("mcp-url-not-http", {"agents/a.md": md(BASE + MCP.replace("http://127.0.0.1:9/mcp", "ws://h/mcp")
                                                + MCP_HOST)}, "CX325", line=7, hint="streamable HTTP"),
    Case("mcp-url-credentials", {"agents/a.md": md(BASE + MCP.replace("http://", "http://me:pw@") + MCP_HOST)},
         "CX325", line=7, hint="must not carry credentials"),
    Case("mcp-url-malformed-host", {"agents/a.md": md(BASE + MCP.replace("127.0.0.1:9", "[127.0.0.1") + MCP_HOST)},
         "CX325", line=7, hint="malformed host or port (Invalid IPv6 URL)"),
    Case("mcp-url-port-out-of-range", {"agents/a.md": md(BASE + MCP.replace(":9/", ":99999/") + MCP_HOST)},
         "CX325", line=7, hint="malformed host or port"),
    Case("mcp-literal-header", {"agents/a.md": md(BASE + MCP.replace("{env: FILES_TOKEN}", "Bearer abc")
                                                  + MCP_HOST)}, "CX204", line=9, hint="never the value itself"),
    Case("mcp-reserved-header", {"agents/a.md": md(BASE + MCP.replace("Authorization", "Mcp-Session-Id")
                                                   + MCP_HOST)}, "CX204", hint="set by the MCP transport"),
    Case("mcp-host-not-allowed", {"agents/a.md": md(BASE + MCP + "tools: [files.read]\n"
                                                    "security_policy:\n  allowed_hosts: [api.example, 127.0.0.1:8]\n")},
         "CX326", line=7, hint="add 127.0.0.1:9 to security_policy.allowed_hosts (or 127.0.0.1: any port)"),
    Case("mcp-no-allowed-hosts", {"agents/a.md": md(BASE + MCP + "tools: [files.read]\n")}, "CX326", line=7,
         hint="MCP server 'files': its host 127.0.0.1:9 is not on security_policy.allowed_hosts"),
    Case("mcp-server-twice", {"agents/a.md": md(BASE + MCP + MCP.removeprefix("mcp_servers:\n") + MCP_HOST)},
         "CX204", hint="declared twice"),
    Case("parameter-bad-unit", {"agents/a.md": md(BASE + "parameters:\n  limit: 10 apples\n")}, "CX303", line=6),
    Case("template-syntax", {"agents/a.md": md(BASE + "user_prompt_template: |\n  Hello\n  {{ request \n")},
         "CX305", line=7),
    Case("template-syntax-toml", {"agents/a.toml": 'name = "alpha"\nversion = "1.0.0"\nsystem_prompt = """\n'
                                                   'one\n{% if x %}\n"""\n'}, "CX305", file="agents/a.toml"),
    Case("template-unknown-variable", {"agents/a.md": md(BASE + "user_prompt_template: |\n  Hi\n  {{ requst }}\n")},
         "CX306", line=7, hint="did you mean 'request'?"),
    Case("template-unknown-filter", {"agents/a.md": md(BASE + "user_prompt_template: '{{ request | shout }}'\n")},
         "CX307", line=5),
    # templates the sandbox refuses, or that burn the engine (CX309: line and column of the construct)
    Case("template-ssti-class-mro", {"agents/a.md": md('name: alpha\nversion: "1.0.0"\nsystem_prompt: '
                                                       '"{{ \'\'.__class__.__mro__[1].__subclasses__() }}"\n')},
         "CX309", line=4, column=23, hint="'__class__'"),
    Case("template-item-underscore", {"agents/a.md": md(BASE + "user_prompt_template: |\n  Hi\n"
                                                        "  {{ history['__class__'] }}\n")}, "CX309", line=7,
         column=15),
    Case("template-attr-filter", {"agents/a.md": md(BASE + "user_prompt_template: \"{{ request|attr('__init__') }}\"\n")},
         "CX309", line=5, column=41, hint="attr filter"),
    Case("template-unsafe-attribute", {"agents/a.md": md(BASE + "user_prompt_template: '{{ cycler.gi_frame }}'\n")},
         "CX309", line=5, column=34, hint="interpreter internals"),
    Case("template-unsafe-global", {"agents/a.md": md(BASE + "user_prompt_template: '{{ os.popen(\"id\") }}'\n")},
         "CX309", line=5, column=27, hint="'os'"),
    Case("template-mutating-method", {"agents/a.md": md(BASE + "user_prompt_template: '{{ history.append(1) }}'\n")},
         "CX309", line=5, column=35, hint="'append'"),
    Case("template-huge-range", {"agents/a.md": md(BASE + "user_prompt_template: |\n  {% for i in range(10**7) %}x"
                                                   "{% endfor %}\n")}, "CX309", line=6, column=15, hint="range"),
    Case("template-literal-repetition", {"agents/a.md": md(BASE + "user_prompt_template: \"{{ 'x' * 10**9 }}\"\n")},
         "CX309", line=5, column=31, hint="1,000,000,000 items"),
    Case("template-request-repetition", {"agents/a.md": md(BASE + "user_prompt_template: '{{ request * 10**7 }}'\n")},
         "CX309", line=5, column=35, hint="10,000,000 times"),
    Case("template-variable-factor", {"agents/a.toml": 'name = "alpha"\nversion = "1.0.0"\nsystem_prompt = """\n'
                                                       'one\n{{ request * parameters.n }}\n"""\n'},
         "CX309", file="agents/a.toml", line=5, column=12, hint="not a small literal"),
    Case("template-huge-power", {"agents/a.md": md(BASE + "user_prompt_template: '{{ 10**(10**7) }}'\n")},
         "CX309", line=5, column=29, hint="power 10,000,000"),
    Case("template-wide-format", {"agents/a.md": md(BASE + "user_prompt_template: \"{{ '%0999999d' % 1 }}\"\n")},
         "CX309", line=5, column=28, hint="width"),
    # WASM modules
    Case("module-missing", {"agents/a.md": wasm_agent()}, "CX401", line=5),
    Case("module-escape-dotdot", {"agents/a.md": wasm_agent("../../../etc/passwd")}, "CX402", line=5),
    Case("module-escape-absolute", {"agents/a.md": wasm_agent("/etc/passwd")}, "CX402", line=5),
    Case("digest-mismatch", {"agents/a.md": wasm_agent(extra="sha256: " + "ab" * 32 + "\n"), "wasm/m.wasm": GOOD},
         "CX405", line=6),
    Case("garbage-wasm", {"agents/a.md": wasm_agent(), "wasm/m.wasm": b"this is not wasm at all"}, "CX403",
         line=5),
    Case("wat-named-wasm", {"agents/a.md": wasm_agent(), "wasm/m.wasm": GOOD_WAT}, "CX403", line=5),
    Case("truncated-wasm", {"agents/a.md": wasm_agent(), "wasm/m.wasm": GOOD[:30]}, "CX403", line=5),
    Case("module-too-large", {"agents/a.md": wasm_agent(extra="resource_limits:\n  max_module_size: 40\n"),
                              "wasm/m.wasm": GOOD}, "CX404", line=5),
    Case("import-not-allowed", {"agents/a.md": wasm_agent(), "wasm/m.wasm": mod(GOOD_WAT.replace(
        '(memory', '(import "env" "system" (func))\n  (memory'))}, "CX406", line=5, hint="env.system"),
    Case("wasi-not-granted", {"agents/a.md": wasm_agent(), "wasm/m.wasm": mod(GOOD_WAT.replace(
        '(memory', '(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))\n'
        '  (memory'))}, "CX412", line=5),
    Case("host-import-unknown", {"agents/a.md": wasm_agent(extra="security_policy:\n  allowed_imports: ['caxton.*']\n"),
                                 "wasm/m.wasm": mod(GOOD_WAT.replace('"log"', '"shout"'))}, "CX413", line=5),
    Case("memory-over-pages", {"agents/a.md": wasm_agent(), "wasm/m.wasm": mod(GOOD_WAT.replace(
        '"memory") 1)', '"memory") 300)'))}, "CX407", line=5),
    Case("memory-over-bytes", {"agents/a.md": wasm_agent(extra="resource_limits:\n  max_memory_bytes: 64KiB\n"),
                               "wasm/m.wasm": mod(GOOD_WAT.replace('"memory") 1)', '"memory") 2)'))}, "CX407", line=5),
    Case("export-missing", {"agents/a.md": wasm_agent(), "wasm/m.wasm": mod(GOOD_WAT.replace(
        '(export "caxton_handle")', ''))}, "CX408", line=5, hint="wasm-abi"),
    Case("export-signature", {"agents/a.md": wasm_agent(), "wasm/m.wasm": mod(GOOD_WAT.replace(
        '(param i32) (result i32) (i32.const 1024)', '(param i64) (result i32) (i32.const 1024)'))}, "CX409", line=5),
    Case("denied-feature-simd", {"agents/a.md": wasm_agent(), "wasm/m.wasm": mod(GOOD_WAT.replace(
        '(i64.const 0))', '(drop (v128.const i32x4 0 0 0 0)) (i64.const 0))'))}, "CX410", line=5),
    # numeric ranges: finite, bounded durations and sizes; zero where zero means nothing
    Case("giant-interval", {"agents/a.md": md(BASE + "rollout:\n  interval: 99999999999999999999d\n")}, "CX204",
         line=6, hint="at most 365d"),
    Case("infinite-duration", {"agents/a.md": md(BASE + "rollout:\n  drain_timeout: .inf\n")}, "CX204", line=6,
         hint="finite"),
    Case("nan-duration", {"agents/a.md": md(BASE + "rollout:\n  duration: .nan\n")}, "CX204", line=6, hint="finite"),
    Case("zero-response-timeout", {"agents/a.md": md(BASE + "resource_limits:\n  response_timeout: 0s\n")}, "CX204",
         line=6, hint="greater than 0"),
    Case("zero-message-size", {"agents/a.md": md(BASE + "resource_limits:\n  max_message_size: 0B\n")}, "CX204",
         line=6, hint="greater than 0"),
    Case("giant-size", {"agents/a.md": wasm_agent(extra="resource_limits:\n  max_module_size: 99999999999999999999\n"),
                        "wasm/m.wasm": GOOD}, "CX204", line=7, hint="at most 1TiB"),
    Case("memory-over-4gib", {"agents/a.md": wasm_agent(extra="resource_limits:\n  max_memory_bytes: 5GiB\n"),
                              "wasm/m.wasm": GOOD}, "CX204", line=7, hint="4294967296"),
    Case("giant-fuel", {"agents/a.toml": 'name = "w"\nversion = "1.0.0"\nkind = "wasm"\nmodule = "../wasm/m.wasm"\n'
                                         "[resource_limits]\nfuel = 99999999999999999999\n", "wasm/m.wasm": GOOD},
         "CX204", file="agents/a.toml", line=6),
    Case("parameter-nan", {"agents/a.md": md(BASE + "parameters:\n  ratio: .nan\n")}, "CX204", line=6,
         hint="finite"),
    Case("parameter-toml-inf", {"agents/a.toml": 'name = "alpha"\nversion = "1.0.0"\nsystem_prompt = "hi"\n'
                                                 "[parameters]\nlimit = inf\n"}, "CX204", file="agents/a.toml",
         line=5, hint="finite"),
    Case("parameter-giant-int", {"agents/a.md": md(BASE + "parameters:\n  n: 99999999999999999999\n")}, "CX204",
         line=6, hint="64-bit"),
    Case("project-zero-request-size", {"caxton.yaml": "server:\n  max_request_size: 0\n", "agents/a.md": VALID_MD},
         "CX204", file="caxton.yaml", line=2),
    Case("project-zero-provider-timeout", {"caxton.yaml": "llm:\n  openai:\n    timeout: 0s\n",
                                           "agents/a.md": VALID_MD}, "CX204", file="caxton.yaml", line=3),
    # project settings
    Case("project-unknown-field", {"caxton.yaml": "agents_dir: agents\nenviroments: {}\n", "agents/a.md": VALID_MD},
         "CX202", file="caxton.yaml", line=2, hint="did you mean 'environments'?"),
    Case("project-syntax", {"caxton.yaml": "environments: [\n", "agents/a.md": VALID_MD}, "CX110", file="caxton.yaml"),
    Case("project-bad-url", {"caxton.yaml": "environments:\n  prod:\n    engines: [ftp://x]\n",
                             "agents/a.md": VALID_MD}, "CX204", file="caxton.yaml", line=3),
]


def test_there_are_at_least_40_distinct_bad_inputs() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_a_precise_diagnostic_and_exit_1(
    case: Case, repo: Callable[[dict[str, str | bytes]], Path], validate_json: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = repo(case.files)
    monkeypatch.chdir(root)
    code, report = validate_json(".")
    assert code == 1
    assert report["valid"] is False
    matches = [d for d in report["diagnostics"] if d["code"] == case.code and d["file"] == case.file]
    assert matches, report["diagnostics"]
    found = matches[0]
    assert found["severity"] == "error"
    if case.line is not None:
        assert found["line"] == case.line, found
    if case.hint is not None:
        assert case.hint in (found["hint"] or "") + found["message"], found
    if case.column is not None:
        assert found["column"] == case.column, found


def test_all_problems_of_all_files_in_one_run(
    repo: Callable[[dict[str, str | bytes]], Path], validate_json: Any,
) -> None:
    root = repo({
        "agents/a.md": md(BASE + "toolz: []\ntools: [nope]\n"),
        "agents/b.md": md('name: beta\nversion: "x"\nsystem_prompt: "{{ requst }}"\n'),
        "agents/c.toml": "name = \n",
    })
    code, report = validate_json(str(root))
    assert code == 1
    found = {(d["file"].rsplit("/", 1)[-1], d["code"]) for d in report["diagnostics"]}
    assert {("a.md", "CX202"), ("a.md", "CX302"), ("b.md", "CX206"), ("c.toml", "CX111")} <= found
