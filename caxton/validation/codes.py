"""The catalogue of diagnostic codes (documented in docs/validation.md).

Every diagnostic the validation pipeline emits uses one of these codes. The
SARIF renderer lists them as rules, the docs test checks they are all
documented. Codes are stable: never reuse a retired number.
"""

from __future__ import annotations

from dataclasses import dataclass

from caxton.spec.diagnostics import Severity


@dataclass(frozen=True)
class Code:
    """One diagnostic code: its id, a short kebab title and its default severity."""

    id: str
    title: str
    severity: Severity
    summary: str


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO

CATALOGUE: tuple[Code, ...] = (
    # CX1xx: files and syntax
    Code("CX101", "file-unreadable", _E, "the file could not be read"),
    Code("CX102", "empty-file", _E, "the agent file is empty"),
    Code("CX103", "binary-file", _E, "the file contains NUL bytes: not a text file"),
    Code("CX104", "not-utf8", _E, "the file is not valid UTF-8"),
    Code("CX105", "file-too-large", _E, "the agent file is larger than the limit (1 MiB)"),
    Code("CX106", "unsupported-file", _E, "a file given explicitly is not an agent file (.md, .toml) or caxton.yaml"),
    Code("CX107", "no-agents", _I, "the agents directory holds no agent file"),
    Code("CX108", "not-a-regular-file", _E, "a FIFO, socket or device where a file is expected: skipped unopened"),
    Code("CX109", "symlink-loop", _E, "a symlink that leads back to itself"),
    Code("CX110", "yaml-syntax", _E, "YAML syntax error"),
    Code("CX111", "toml-syntax", _E, "TOML syntax error"),
    Code("CX112", "frontmatter-missing", _E, "a .md agent file must start with a '---' line"),
    Code("CX113", "frontmatter-unclosed", _E, "the YAML frontmatter has no closing '---' line"),
    Code("CX114", "not-a-mapping", _E, "the frontmatter or TOML document is not a mapping of keys"),
    Code("CX115", "duplicate-key", _E, "the same key appears twice in one mapping"),
    Code("CX116", "nesting-too-deep", _E, "lists and mappings nested deeper than the limit (64 levels)"),
    # CX2xx: schema (fields, types, formats)
    Code("CX201", "missing-field", _E, "a required field is missing"),
    Code("CX202", "unknown-field", _E, "a field the schema does not know (typo?)"),
    Code("CX203", "wrong-type", _E, "a field has the wrong type"),
    Code("CX204", "invalid-value", _E, "a field's value is out of range or malformed"),
    Code("CX205", "invalid-name", _E, "the agent name is not a valid identity"),
    Code("CX206", "invalid-version", _E, "the version is not a semantic version"),
    Code("CX207", "invalid-capability", _E, "a capability is not lower-case kebab/dotted syntax"),
    Code("CX208", "invalid-kind", _E, "kind is neither 'config' nor 'wasm'"),
    Code("CX209", "invalid-unit", _E, "a size or duration with an unknown unit"),
    Code("CX210", "deprecated-field", _W, "a deprecated spelling of a field"),
    Code("CX211", "invalid-choice", _E, "a value outside the allowed set (memory scope, strategy...)"),
    # CX3xx: agent semantics
    Code("CX301", "duplicate-agent", _E, "two files define the same agent identity"),
    Code("CX302", "unknown-tool", _E, "a tool that is neither built in nor a WASM tool of the desired state"),
    Code("CX303", "parameter-unit", _E, "a parameter shaped like a quantity has an unknown unit"),
    Code("CX304", "literal-secret", _W, "a secret-looking parameter holds a literal value"),
    Code("CX305", "template-syntax", _E, "Jinja2 syntax error in a prompt template"),
    Code("CX306", "template-variable", _E, "a template uses a variable the runtime does not provide"),
    Code("CX307", "template-filter", _E, "a template uses a filter or test Jinja2 does not know"),
    Code("CX308", "duplicate-entry", _W, "the same tool or capability is listed twice"),
    Code("CX309", "template-unsafe", _E, "a template reaches Python internals or can burn the engine (huge range, "
         "repetition, power)"),
    Code("CX310", "tool-unreachable", _W, "http_client is listed but security_policy.allowed_hosts is empty "
         "(every call is refused)"),
    Code("CX320", "tool-schema-invalid", _E, "a WASM tool's tool.parameters is not a valid JSON Schema of an object"),
    Code("CX321", "tool-shadowed", _E, "a WASM tool has the name of a built-in tool"),
    Code("CX322", "tool-slower-than-timeout", _W, "a WASM tool's max_execution_time_ms is longer than the "
         "calling agent's tool_call_timeout"),
    Code("CX323", "mcp-unknown-server", _E, "a tool server.tool names an MCP server the agent does not declare"),
    Code("CX324", "mcp-tool-not-allowed", _E, "a tool server.tool that is not in the server's allowed_tools"),
    Code("CX325", "mcp-server-url", _E, "an MCP server URL that is not http(s), has no (readable) host or carries "
         "credentials"),
    Code("CX326", "mcp-host-not-allowed", _E, "an MCP server URL whose host is not on security_policy.allowed_hosts"),
    # CX4xx: WASM modules
    Code("CX401", "module-missing", _E, "the WASM module file does not exist"),
    Code("CX402", "path-escape", _E, "a path points outside the repository root"),
    Code("CX403", "module-invalid", _E, "the module is not valid WebAssembly"),
    Code("CX404", "module-too-large", _E, "the module is larger than resource_limits.max_module_size"),
    Code("CX405", "digest-mismatch", _E, "the module's sha256 differs from the pinned sha256"),
    Code("CX406", "import-not-allowed", _E, "the module imports something security_policy does not allow"),
    Code("CX407", "memory-over-limit", _E, "the module's initial memory exceeds the policy"),
    Code("CX408", "export-missing", _E, "a required export of the Caxton WASM ABI is missing"),
    Code("CX409", "export-signature", _E, "an ABI export has the wrong kind or signature"),
    Code("CX410", "feature-denied", _E, "the module uses a WebAssembly feature the policy denies"),
    Code("CX411", "digest-unpinned", _I, "the module has no sha256 pin"),
    Code("CX412", "wasi-not-granted", _E, "the module imports WASI but the policy grants no file or network access"),
    Code("CX413", "host-import-mismatch", _E, "an import from the caxton host module that the host does not provide"),
    Code("CX414", "memory-max-over-limit", _W, "the module's declared maximum memory exceeds the policy"),
    Code("CX415", "feature-unchecked", _I, "a denied feature that this wasmtime cannot check"),
    Code("CX416", "module-not-compiled", _I, "without wasmtime (light install): function bodies not validated, "
         "denied features read by the pure reader"),
)

BY_ID: dict[str, Code] = {code.id: code for code in CATALOGUE}
