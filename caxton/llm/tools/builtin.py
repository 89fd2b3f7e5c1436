"""The built-in tools: memory_search, memory_store, json_validator, json_parser, csv_parser, calculator,
http_client (``caxton.llm.tools.http``). Their names and one-line descriptions are
``caxton.spec.tools.BUILTIN_TOOLS``; docs/tools.md lists their arguments and limits.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from caxton import errors
from caxton.llm.tools import http
from caxton.llm.tools.base import FunctionTool, JsonValue, Tool, ToolContext
from caxton.spec.tools import BUILTIN_TOOLS

MAX_CSV_ROWS = 10_000
MAX_EXPRESSION = 1_000
MAX_EXPONENT = 10_000
MAX_MAGNITUDE = 1e300
MAX_OBSERVATIONS = 20

Factory = Callable[[ToolContext], Tool]


def _tool(name: str, parameters: dict[str, Any], run: Callable[[dict[str, Any], float], JsonValue]) -> FunctionTool:
    return FunctionTool(name, BUILTIN_TOOLS[name], {"type": "object", "additionalProperties": False, **parameters}, run)


# --- memory ------------------------------------------------------------------------------------------


def _memory_search(context: ToolContext) -> Tool:
    def run(arguments: dict[str, Any], deadline: float) -> JsonValue:
        memory = _memory(context)
        found = memory.recall(context.agent, context.memory_scope, arguments["query"], int(arguments.get("k", 5)),
                              context.memory_min_similarity)
        return {"results": found}

    return _tool("memory_search", {
        "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 4096},
                       "k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5}},
        "required": ["query"]}, run)


def _memory_store(context: ToolContext) -> Tool:
    def run(arguments: dict[str, Any], deadline: float) -> JsonValue:
        memory = _memory(context)
        return memory.note(context.agent, context.memory_scope, arguments["name"], arguments.get("type", "fact"),
                           list(arguments["observations"]))

    return _tool("memory_store", {
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200},
                       "type": {"type": "string", "minLength": 1, "maxLength": 100, "default": "fact"},
                       "observations": {"type": "array", "minItems": 1, "maxItems": MAX_OBSERVATIONS,
                                        "items": {"type": "string", "minLength": 1, "maxLength": 4096}}},
        "required": ["name", "observations"]}, run)


def _memory(context: ToolContext) -> Any:
    if context.memory is None:
        raise errors.ToolFailure("the engine runs without memory", reason="failed",
                                 hint="enable memory in caxton.yaml (memory.enabled)")
    return context.memory


# --- JSON -------------------------------------------------------------------------------------------------


def _json_validator(context: ToolContext) -> Tool:
    def run(arguments: dict[str, Any], deadline: float) -> JsonValue:
        import jsonschema

        schema = arguments["schema"]
        validator_class = jsonschema.validators.validator_for(schema)
        try:
            validator_class.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise errors.ToolFailure(f"the schema is not valid JSON Schema: {exc.message}",
                                     reason="invalid_arguments") from None
        found = sorted(validator_class(schema).iter_errors(arguments["document"]), key=lambda e: list(e.path))
        return {"valid": not found,
                "errors": [{"path": _json_path(e.absolute_path), "message": e.message} for e in found[:50]]}

    return _tool("json_validator", {
        "properties": {"document": {"description": "any JSON value"},
                       "schema": {"type": "object", "description": "a JSON Schema"}},
        "required": ["document", "schema"]}, run)


def _json_path(path: Sequence[Any]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


_PATH_PART = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def _json_parser(context: ToolContext) -> Tool:
    def run(arguments: dict[str, Any], deadline: float) -> JsonValue:
        try:
            value = json.loads(arguments["text"])
        except ValueError as exc:
            raise errors.ToolFailure(f"not JSON: {exc}", reason="invalid_arguments") from None
        return {"value": _pick(value, arguments.get("path", ""))}

    return _tool("json_parser", {
        "properties": {"text": {"type": "string"},
                       "path": {"type": "string", "description": "e.g. items[0].name; empty: the whole document"}},
        "required": ["text"]}, run)


def _pick(value: Any, path: str) -> Any:
    position = 0
    for match in _PATH_PART.finditer(path):
        if match.start() != position:
            break
        position = match.end()
        key, index = match.group(1), match.group(2)
        if index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        elif key is not None and isinstance(value, dict) and key in value:
            value = value[key]
        else:
            raise errors.ToolFailure(f"path {path!r}: nothing at {path[:position]!r}", reason="invalid_arguments")
    if position != len(path):
        raise errors.ToolFailure(f"path {path!r} is not of the form a.b[0].c", reason="invalid_arguments")
    return value


# --- CSV ----------------------------------------------------------------------------------------------------


def _csv_parser(context: ToolContext) -> Tool:
    def run(arguments: dict[str, Any], deadline: float) -> JsonValue:
        reader = csv.reader(io.StringIO(arguments["text"]), delimiter=arguments.get("delimiter", ","), strict=True)
        limit = int(arguments.get("max_rows", 1000))
        try:
            rows = [row for _, row in zip(range(limit + 1), reader)]
        except csv.Error as exc:
            raise errors.ToolFailure(f"not CSV: {exc}", reason="invalid_arguments") from None
        truncated = len(rows) > limit + (1 if arguments.get("header", True) else 0)
        if arguments.get("header", True) and rows:
            columns, body = rows[0], rows[1:limit + 1]
            return {"columns": columns, "rows": [dict(zip(columns, r)) for r in body], "row_count": len(body),
                    "truncated": truncated}
        return {"rows": rows[:limit], "row_count": len(rows[:limit]), "truncated": len(rows) > limit}

    return _tool("csv_parser", {
        "properties": {"text": {"type": "string"},
                       "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ","},
                       "header": {"type": "boolean", "default": True,
                                  "description": "the first row names the columns (rows are objects)"},
                       "max_rows": {"type": "integer", "minimum": 1, "maximum": MAX_CSV_ROWS, "default": 1000}},
        "required": ["text"]}, run)


# --- calculator ---------------------------------------------------------------------------------------------

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs, "round": round, "min": min, "max": max, "sqrt": math.sqrt, "log": math.log, "exp": math.exp,
    "floor": math.floor, "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def _calculator(context: ToolContext) -> Tool:
    def run(arguments: dict[str, Any], deadline: float) -> JsonValue:
        return {"result": calculate(arguments["expression"])}

    return _tool("calculator", {
        "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": MAX_EXPRESSION,
                                      "description": "numbers, + - * / // % **, parentheses, "
                                                     + ", ".join(sorted(_FUNCTIONS)) + ", pi, e"}},
        "required": ["expression"]}, run)


def calculate(expression: str) -> int | float:
    """Evaluate arithmetic by walking its syntax tree (never ``eval``); raises ``ToolFailure``."""
    try:
        tree = ast.parse(expression, mode="eval")
        value = _evaluate(tree.body)
    except errors.ToolFailure:
        raise
    except SyntaxError as exc:
        raise errors.ToolFailure(f"not an expression: {exc.msg}", reason="invalid_arguments") from None
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise errors.ToolFailure(f"cannot compute {expression!r}: {exc}", reason="invalid_arguments") from None
    if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
        raise errors.ToolFailure(f"{expression!r} is not a finite number", reason="invalid_arguments")
    return value


def _evaluate(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > MAX_EXPONENT or abs(left) > MAX_MAGNITUDE):
            raise errors.ToolFailure(f"exponent {right} is too large (at most {MAX_EXPONENT})",
                                     reason="invalid_arguments")
        result = _BINARY[type(node.op)](left, right)
        if isinstance(result, int) and result.bit_length() > 1000:
            raise errors.ToolFailure("the result is too large", reason="invalid_arguments")
        return result
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
            and not node.keywords):
        return _FUNCTIONS[node.func.id](*(_evaluate(a) for a in node.args))
    raise errors.ToolFailure(f"{ast.unparse(node)!r} is not arithmetic (numbers, operators, "
                             f"{', '.join(sorted(_FUNCTIONS))})", reason="invalid_arguments")


# --- the source ---------------------------------------------------------------------------------------------

FACTORIES: dict[str, Factory] = {
    "memory_search": _memory_search,
    "memory_store": _memory_store,
    "json_validator": _json_validator,
    "json_parser": _json_parser,
    "csv_parser": _csv_parser,
    "calculator": _calculator,
    "http_client": http.http_client,
}


class BuiltinSource:
    """The built-in tools as a ``ToolSource``."""

    def names(self) -> Sequence[str]:
        return list(FACTORIES)

    def build(self, name: str, context: ToolContext) -> Tool | None:
        factory = FACTORIES.get(name)
        return factory(context) if factory else None


BUILTIN = BuiltinSource()
