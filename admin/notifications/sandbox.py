"""The sandbox message templates run in: billing's, plus a budget per message. Pure.

Billing's :class:`~admin.billing.render.templates.Sandbox` (Jinja2's immutable sandbox, ``*`` and
``**`` bounded) already refuses Python's internals (``''.__class__``, ``cycler.__init__.__globals__``)
and methods that change a value. Jinja2's sandbox does not bound the work a template does, and a
message template is rendered by the worker thousands of times, so operators' templates get a budget
on top (checked when the template is saved, against the samples, so a template that runs away is
refused then):

- at most :data:`MAX_STEPS` loop turns plus calls per message: every ``{% for %}`` of an operator's
  template is rewritten (:func:`guarded`) to spend one step per item, and every call spends one
  (a macro calling itself twice per call is stopped after :data:`MAX_STEPS` calls);
- no string longer than :data:`MAX_TEXT` made by ``~``, ``+``, ``%``, a method or a filter, and no
  output longer than that either (``Environment.concat`` joins every template's, block's and
  macro's output);
- no width, count or repeat over :data:`~admin.billing.render.templates.MAX_REPEAT` given to a
  string method or a filter that makes long strings from it (``'x'.center(10**9)``,
  ``'x'|indent(10**9)``, ``'%*d' % (10**9, 1)``, ``'{:>1000000000}'.format(1)``) and no
  ``replace`` whose result would be longer than :data:`MAX_TEXT`: refused before the string is made.

What is left: a template can still make a few strings of :data:`MAX_TEXT` (one per step) before it
is stopped, which is memory and milliseconds, not an outage.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jinja2
from jinja2 import nodes, pass_context
from jinja2.runtime import Context
from jinja2.visitor import NodeTransformer

from admin.billing.render.templates import MAX_REPEAT, Sandbox

#: Loop turns plus calls one operator's template may make for one message.
MAX_STEPS = 10_000
#: The longest text a template may print, or make as one string, in characters.
MAX_TEXT = 200_000
#: Where the per-message budget sits among the names a template is given: not a name a template
#: can write (it has a space), so only the guards find it.
BUDGET = "steps left"
STEP_FILTER = "lastmile_steps"
SIZE_FILTER = "lastmile_size"
#: Jinja2's filters that make a string as long as one of their numbers (a width, a count, a length).
_WIDE_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "batch", "slice", "format", "replace"})
#: Numbers in a printf-style or str.format spec: a width or precision.
_PRINTF_SPEC = re.compile(r"%[-#0 +]*(\d*)(?:\.(\d*))?")
_FORMAT_SPEC = re.compile(r"\{[^{}]*?:([^{}]*)\}")
_NESTED_FIELD = re.compile(r"\{[^{}]*:[^{}]*\{")


def refuse(why: str) -> jinja2.exceptions.SecurityError:
    return jinja2.exceptions.SecurityError(why)


class Budget:
    """What is left of one message's :data:`MAX_STEPS` (a fresh one per render)."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_STEPS

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise refuse(f"more than {MAX_STEPS} loop turns and calls for one message")


def _spend(context: Context) -> None:
    budget = context.get(BUDGET)
    if isinstance(budget, Budget):
        budget.spend()


def _sized(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_TEXT:
        raise refuse(f"a value longer than {MAX_TEXT} characters or items")
    return value


def _no_wide_numbers(values: Iterable[Any]) -> None:
    if any(isinstance(v, int) and not isinstance(v, bool) and v > MAX_REPEAT for v in values):
        raise refuse(f"a width, count or length over {MAX_REPEAT}")


def _narrow_format(fmt: object, printf: bool) -> None:
    """Refuses a format string whose width or precision is over MAX_REPEAT."""
    if not isinstance(fmt, str):
        return
    if printf:
        numbers = [n for m in _PRINTF_SPEC.finditer(fmt) for n in m.groups() if n]
    else:
        numbers = re.findall(r"\d+", " ".join(_FORMAT_SPEC.findall(fmt)))
    _no_wide_numbers(int(n) for n in numbers)


def _bounded_replace(text: object, old: object, new: object) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = len(text) + 1 if not old else text.count(old)
        if len(text) + hits * (len(new) - len(old)) > MAX_TEXT:
            raise refuse(f"a replace making a value longer than {MAX_TEXT} characters")


def _wide_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Jinja2's filter ``name``, refusing the numbers and replacements that make huge strings."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # the context it is passed

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        value, rest = args[skip] if len(args) > skip else None, args[skip + 1:]
        if name == "format":  # what it formats may be any number; a width only through "*"
            _narrow_format(value, printf=True)
            if isinstance(value, str) and "*" in value:
                _no_wide_numbers((*rest, *kwargs.values()))
        else:
            _no_wide_numbers((*rest, *kwargs.values()))
        if name == "replace" and len(rest) >= 2:
            _bounded_replace(value, rest[0], rest[1])
        return _sized(func(*args, **kwargs))

    return guarded


class MessageSandbox(Sandbox):
    """Billing's sandbox, with calls counted, ``+`` and ``%`` bounded and the output bounded."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in _WIDE_FILTERS:
            self.filters[name] = _wide_filter(name, self.filters[name])
        self.filters.update({STEP_FILTER: _steps, SIZE_FILTER: _sized})
        self.globals.pop("lipsum", None)  # nothing a message needs; it only makes text

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # A data field of a dataclass (the message's views) is a value, not a method or Python's
        # internals: answered at once (Jinja2's checks are most of a render's time otherwise).
        if not attr.startswith("_") and attr in getattr(type(obj), "__dataclass_fields__", ()):
            return True
        return super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "+":
            return _sized(left + right)
        if operator_ == "%":
            if isinstance(left, str):
                _narrow_format(left, printf=True)
                if "*" in left:
                    _no_wide_numbers(right if isinstance(right, tuple) else (right,))
            return _sized(left % right)
        return super().call_binop(context, operator_, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _spend(__context)
        # a str method, bound (__self__), or str.format as the sandbox wraps it (__wrapped__)
        owner = getattr(__obj, "__self__", None) or getattr(getattr(__obj, "__wrapped__", None), "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name in ("format", "format_map"):  # a width only in the spec, or a field nested in it
                _narrow_format(owner, printf=False)
                if _NESTED_FIELD.search(owner):
                    _no_wide_numbers((*args, *kwargs.values()))
            else:
                _no_wide_numbers((*args, *kwargs.values()))
            if name == "replace" and len(args) >= 2:
                _bounded_replace(owner, args[0], args[1])
        return _sized(super().call(__context, __obj, *args, **kwargs))

    def concat(self, parts: Iterable[str]) -> str:  # Environment.concat is "".join
        """Every template's (and block's, macro's) output joined, up to :data:`MAX_TEXT`."""
        kept: list[str] = []
        size = 0
        for part in parts:
            size += len(part)
            if size > MAX_TEXT:
                raise refuse(f"a message longer than {MAX_TEXT} characters")
            kept.append(part)
        return "".join(kept)


@pass_context
def _steps(context: Context, iterable: Any) -> Iterator[Any]:
    """Put around the iterable of every ``{% for %}`` of an operator's template."""
    if isinstance(iterable, jinja2.Undefined):
        iterable._fail_with_undefined_error()
    for item in iterable:
        _spend(context)
        yield item


class _Guard(NodeTransformer):
    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, STEP_FILTER, [], [], None, None, lineno=node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, SIZE_FILTER, [], [], None, None, lineno=node.lineno)


def guarded(env: jinja2.Environment, source: str) -> jinja2.Template:
    """An operator's template compiled in ``env`` with its loops spending the budget and its ``~``
    bounded. Raises Jinja2's :class:`~jinja2.TemplateSyntaxError` (and TemplateNotFound)."""
    tree = _Guard().visit(env.parse(source))
    assert isinstance(tree, nodes.Template)
    tree.set_environment(env)
    return env.from_string(tree)
