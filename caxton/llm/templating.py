"""Prompt templates rendered within bounds: output size, render time, and the size of every value built.

``caxton validate`` and the deploy check (``caxton.rules.template_safety``)
refuse the constructs that escape the sandbox or burn the engine when they are
written in the template; what only run time knows (``request * n`` with ``n``
from the message, a loop over a long input) is bounded here, per message:

- ``BoundedSandbox`` is the validation's sandbox (``ENVIRONMENT_OPTIONS``:
  never constant-folded) whose ``call_binop`` refuses a ``*``, ``**``, ``%``
  or ``+`` whose result would pass the output cap *before* computing it, and
  whose calls and filters refuse a number argument over the cap (``ljust``,
  ``center``, ``lipsum``...) or a ``replace`` that would grow past it;
- ``render`` streams the template (``generate``) and stops once the output
  passes ``max_output`` or the deadline passes; a watchdog thread interrupts
  a render still running at its deadline (an asynchronous exception into the
  rendering thread: pure-Python loops with no output are stopped too).

A render stopped by a bound raises ``RenderLimit``; the config-agent runtime
fails that one message with reason ``template``.
"""

from __future__ import annotations

import ctypes
import functools
import heapq
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment

from caxton.rules.template_safety import MAX_FORMAT_WIDTH, format_too_wide
from caxton.rules.templates import ENVIRONMENT_OPTIONS

DEFAULT_MAX_OUTPUT = 1024 * 1024
DEFAULT_RENDER_TIMEOUT = 1.0
#: Largest integer ``**`` may build at run time, in bits (about 30,000 digits).
MAX_POWER_BITS = 100_000
_DIGITS = re.compile(r"\d+")


class RenderLimit(Exception):
    """A render went past a bound (size or time); the message names which."""


class RenderTimedOut(RenderLimit):
    """A render went past its time bound (``render``'s ``timeout``)."""


class _RenderTimeout(BaseException):
    """Raised into a rendering thread by the watchdog (BaseException: templates cannot catch it)."""


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` to ``environment.bounded_concat`` (Jinja2 joins it directly, unchecked)."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The prompt templates' sandbox, refusing values larger than ``max_output`` before building them."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, **ENVIRONMENT_OPTIONS)
        self.max_output = max_output
        self.filters = {name: _bounded_filter(self, name, func) for name, func in self.filters.items()}

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        self.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def check_binop(self, operator: str, left: Any, right: Any) -> None:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > self.max_output:
                    raise RenderLimit(f"a repetition would build {len(seq) * times:,} items "
                                      f"(limit {self.max_output:,})")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if abs(left).bit_length() * right > MAX_POWER_BITS:
                raise RenderLimit(f"a power would have more than {MAX_POWER_BITS:,} bits")
        elif operator == "%" and isinstance(left, str):
            if format_too_wide(left):
                raise RenderLimit(f"a '%' format has a width or precision over {MAX_FORMAT_WIDTH:,}")
            self.check_size(len(left) + _size(right), "a '%' format")
        elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            if len(left) + len(right) > self.max_output:
                raise RenderLimit(f"a concatenation would build {len(left) + len(right):,} items "
                                  f"(limit {self.max_output:,})")

    def bounded_concat(self, values: tuple[Any, ...]) -> str:
        texts = [str(value) for value in values]
        self.check_size(sum(len(text) for text in texts), "a '~' concatenation")
        return "".join(texts)

    def check_size(self, size: int, what: str) -> None:
        if size > self.max_output:
            raise RenderLimit(f"{what} would build {size:,} characters (limit {self.max_output:,})")

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.check_arguments(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def check_arguments(self, func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Refuse a call whose number arguments or whose growth would pass the output cap."""
        for value in itertools.chain(args, kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > self.max_output:
                raise RenderLimit(f"a call with the number {value:,} (limit {self.max_output:,})")
        func = getattr(func, "__wrapped__", func)  # the sandbox wraps str.format
        owner = getattr(func, "__self__", None)
        name = getattr(func, "__name__", "")
        if isinstance(owner, str) and name in ("format", "format_map"):
            if any(len(d) > 9 or int(d) > MAX_FORMAT_WIDTH for d in _DIGITS.findall(owner)):
                raise RenderLimit(f"a format with a width or precision over {MAX_FORMAT_WIDTH:,}")
            self.check_size(len(owner) + _size(args) + _size(tuple(kwargs.values())), "a format")
        if isinstance(owner, str) and name == "replace" and len(args) >= 2:
            self.check_replace(owner, args[0], args[1])

    def check_replace(self, text: Any, old: Any, new: Any) -> None:
        if isinstance(text, str) and isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
            count = text.count(old) if old else len(text) + 1
            grown = len(text) + count * (len(new) - len(old))
            if grown > self.max_output:
                raise RenderLimit(f"a replace would build {grown:,} characters (limit {self.max_output:,})")


#: What Jinja2 passes to filters before the value (pass_environment, pass_context, pass_eval_context).
_PASSED = (jinja2.Environment, jinja2.runtime.Context, jinja2.nodes.EvalContext)


def _bounded_filter(env: BoundedSandbox, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` refusing number arguments over the cap (and, for ``replace``/``format``, the growth)."""

    @functools.wraps(func)  # keeps jinja_pass_arg (pass_environment, pass_context...)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        values = [a for a in args if not isinstance(a, _PASSED)]
        env.check_arguments(None, tuple(values[1:]), kwargs)
        if name == "replace" and len(values) >= 3:
            env.check_replace(str(values[0]), values[1], values[2])
        elif name == "format" and values and isinstance(values[0], str):
            if format_too_wide(values[0]):
                raise RenderLimit(f"a format with a width or precision over {MAX_FORMAT_WIDTH:,}")
            env.check_size(len(values[0]) + _size(tuple(values[1:])), "a format")
        elif name == "join" and values:
            env.check_size(_size(values[0]) + _size(tuple(values[1:2])) * max(_count(values[0]), 0), "a join")
        return func(*args, **kwargs)

    return bounded


def _size(value: Any) -> int:
    """Characters ``value`` renders to (texts, and texts in tuples and lists; other values by their str)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (tuple, list)):
        return sum(_size(item) for item in value)
    if isinstance(value, Mapping):
        return sum(_size(item) for item in value.values())
    if isinstance(value, int):
        return value.bit_length() * 3 // 10 + 2  # digits, without building the text
    return 24 if isinstance(value, float) else 0


def _count(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def render(template: jinja2.Template, variables: Mapping[str, Any], *, max_output: int, timeout: float) -> str:
    """The rendered text, or RenderLimit once it passes ``max_output`` characters or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    parts: list[str] = []
    size = 0
    try:
        with WATCHDOG.guard(deadline):
            for chunk in template.generate(variables):
                size += len(chunk)
                if size > max_output:
                    raise RenderLimit(f"the output passed {max_output:,} characters")
                if time.monotonic() > deadline:
                    raise _RenderTimeout()
                parts.append(chunk)
    except _RenderTimeout:
        raise RenderTimedOut(f"rendering took longer than {timeout:g}s") from None
    return "".join(parts)


class _Watchdog:
    """One thread that raises ``_RenderTimeout`` into renders still running at their deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active: dict[int, tuple[float, int]] = {}
        self._fired: set[int] = set()
        self._heap: list[tuple[float, int]] = []
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def guard(self, deadline: float) -> Iterator[None]:
        thread = threading.get_ident()
        with self._cond:
            token = next(self._tokens)
            self._active[token] = (deadline, thread)
            heapq.heappush(self._heap, (deadline, token))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="caxton-template-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0][1] == token:
                self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._active.pop(token, None)
                fired = token in self._fired
                self._fired.discard(token)
            if fired:  # the exception may still be pending: clear it (if raised already, this is a no-op)
                _raise_in(thread, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][1] not in self._active or self._heap[0][0] <= now):
                    _, token = heapq.heappop(self._heap)
                    found = self._active.pop(token, None)
                    if found is not None:
                        self._fired.add(token)
                        _raise_in(found[1], _RenderTimeout)
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


def _raise_in(thread: int, exception: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread),
                                               ctypes.py_object(exception) if exception else None)


WATCHDOG = _Watchdog()
