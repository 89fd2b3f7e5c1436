"""The names a template must not reach: shared by the template check (``templates``) and its
refused-construct walk (``template_safety``), without importing Jinja2."""

from __future__ import annotations

#: Attributes that reach interpreter internals (jinja2.sandbox's unsafe lists, and their Python 2 names).
UNSAFE_ATTRIBUTES = frozenset({
    "mro", "subclasses", "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame",
    "ag_code", "ag_await", "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "tb_frame", "tb_next",
    "func_globals", "func_code", "func_closure", "func_defaults", "func_dict", "im_func", "im_self", "im_class",
    "co_code", "co_consts",
})
#: Methods that change a list, mapping or set: the immutable sandbox refuses them.
MUTATING_METHODS = frozenset({
    "append", "extend", "insert", "pop", "popitem", "remove", "reverse", "sort", "clear", "update", "setdefault",
    "add", "discard", "difference_update", "intersection_update", "symmetric_difference_update",
})
#: Names of modules and builtins an escape would look for.
UNSAFE_NAMES = frozenset({
    "os", "sys", "subprocess", "builtins", "importlib", "eval", "exec", "compile", "open", "getattr", "setattr",
    "globals", "locals", "vars", "breakpoint", "input",
})
