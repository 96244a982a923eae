"""What one render may spend: a deadline, the weight of any one value, and the bytes it builds in all.

Why three bounds and not only a deadline: the deadline is checked between operations, but one
operation runs in C to its end. `([s] * 99999)|unique` with `s` a 1 MB string is one filter call
that lowercases and hashes 100 GB; `str()` of a nested list is one call that prints all of it. So:

- **weight** bounds the work of any single operation. A value's weight is its characters plus its
  items, counted through nested lists, tuples, dicts and sets, a shared element once per reference
  (`[s] * 5` weighs five `s`). No C operation of the sandbox does more than a few passes over its
  input (sorting: log2(n) comparisons per item), so a value of at most `MAX_WEIGHT` costs at most
  tens of milliseconds whatever is done to it. Every value a template builds (operators, calls,
  filters, literals) is checked; `*` and `+` before they allocate. Printing a value (output, `~`,
  `%`, `str.format`, text filters) walks it first: at most `MAX_STRING_CHARS` weight, and no
  function or Jinja object inside (its text would be a memory address).
- **metering** bounds the lazy chains: a filter that receives an iterator (`map`, `select`,
  `batch`, ... results) consumes it one item at a time, with a deadline check per item and the
  items' weight summed, so `range(99999)|map('center', 99999)|list` stops after 40 items.
- **built bytes** bound memory across operations: everything a template builds is charged its own
  size (a string's bytes, a list's slots); past `MAX_BUILT_BYTES` the render stops. Recursion and
  many variables each holding a distinct megabyte are caught here. An empty value is not charged,
  as a number is not: it holds no characters or items, only a header, and making them is work the
  deadline bounds. Charging the header made a slow template that builds nothing (a macro doubling
  its calls, each printing '') fail as "built more than 32 MB" on a fast machine and as "took
  longer than 2 s" on a slow one.

Caller variables are not limited (the server's body limit bounds them): only what the template
builds from them is.
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext, Macro, TemplateReference, Undefined
from jinja2.utils import Cycler, Joiner, Namespace

#: Seconds one render may take.
RENDER_TIMEOUT = 2.0
#: Longest string a template may build, in characters.
MAX_STRING_CHARS = 1_000_000
#: Heaviest value a template may build: characters plus items, through nesting.
MAX_WEIGHT = 4 * MAX_STRING_CHARS
#: Bytes of values one render may build in all (freed ones included).
MAX_BUILT_BYTES = 32 * 1024 * 1024


class LimitExceeded(Exception):
    """A template went past a size or time limit (or evaluated outside a render)."""


class _Budget:
    __slots__ = ("built", "deadline")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.built = 0


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("promptkeeper_render", default=None)


def render_deadline() -> contextvars.Token[_Budget | None]:
    """Start the clock and the budget of one render; pass the token to `end_render` when it ends."""
    return _budget.set(_Budget(time.monotonic() + RENDER_TIMEOUT))


def end_render(token: contextvars.Token[_Budget | None]) -> None:
    _budget.reset(token)


def rendering() -> bool:
    return _budget.get() is not None


def check_deadline() -> None:
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise LimitExceeded(f"rendering took longer than {RENDER_TIMEOUT:g} s")


_SIZED = (str, bytes, list, tuple, dict, set, frozenset)
_sizeof = sys.getsizeof


def charge(value: Any) -> None:
    """Count a value the template built against the render's `MAX_BUILT_BYTES`."""
    if isinstance(value, _SIZED) and value:
        budget = _budget.get()
        if budget is not None:
            budget.built += _sizeof(value)
            if budget.built > MAX_BUILT_BYTES:
                raise LimitExceeded(f"the template built more than {MAX_BUILT_BYTES >> 20} MB of values")


_UNPRINTABLE = (TemplateReference, Context, LoopContext, Cycler, Joiner, Namespace, Macro)


def unprintable(value: Any) -> SecurityError | None:
    """The error for printing `value` if its text would be an address or Jinja internals."""
    if isinstance(value, Undefined):
        return None  # printing it raises the missing-variable error
    if callable(value) or isinstance(value, _UNPRINTABLE):
        return SecurityError(f"a {type(value).__name__} cannot be printed")
    if isinstance(value, Iterator):
        return SecurityError(f"a {type(value).__name__} cannot be printed (add '|list')")
    return None


def weigh(value: Any, limit: int, *, printing: bool = False) -> int:
    """The weight of `value`, walked iteratively and only until it passes `limit` (so the walk itself
    costs at most `limit` steps). With `printing`, refuse what cannot be printed anywhere inside."""
    if isinstance(value, str | bytes):
        return len(value)
    total = steps = 0
    stack = [value]
    while stack:
        item = stack.pop()
        steps += 1
        if not steps & 0xFFFF:  # a walk of millions of items is itself work the deadline bounds
            check_deadline()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, int):
            total += 1 + item.bit_length() // 4  # about its decimal digits
        else:
            total += 1
            if printing:
                error = unprintable(item)
                if error is not None:
                    raise error
        if total > limit:
            check_deadline()
            return total
    return total


def heavy(what: str, limit: int = MAX_WEIGHT) -> LimitExceeded:
    return LimitExceeded(f"{what} would hold more than {limit} characters and items in all")


def check_weight(value: Any) -> None:
    if isinstance(value, list | tuple | dict | set | frozenset) and weigh(value, MAX_WEIGHT) > MAX_WEIGHT:
        raise heavy(type(value).__name__)


def printable(value: Any) -> Any:
    """`value`, if it may be turned into text: no address inside, and small enough to print."""
    if isinstance(value, str):
        return value
    error = unprintable(value)
    if error is not None:
        raise error
    if isinstance(value, list | tuple | dict | set | frozenset):
        if weigh(value, MAX_STRING_CHARS, printing=True) > MAX_STRING_CHARS:
            raise heavy(f"printed {type(value).__name__}", MAX_STRING_CHARS)
    return value


def metered(iterable: Iterable[Any], max_items: int) -> Iterator[Any]:
    """Items of a lazy sequence one at a time: a deadline check on each, at most `max_items` of
    them and `MAX_WEIGHT` in all, so a filter consuming it in C cannot run away."""
    count = weight = 0
    for item in iterable:
        check_deadline()
        count += 1
        if count > max_items:
            raise LimitExceeded(f"list would be longer than {max_items} items")
        weight += 1 + weigh(item, MAX_WEIGHT)
        if weight > MAX_WEIGHT:
            raise heavy("list")
        yield item
