"""The Jinja2 environment prompt templates run in: the immutable sandbox plus resource limits.

Why more than `ImmutableSandboxedEnvironment`: it blocks Python internals (`__class__`, `__globals__`)
but not a template that asks for gigabytes or hours in a few characters (`{{ 'a' * 10**9 }}`,
`{{ 9**(9**9) }}`, `{{ 'x'|center(10**9) }}`, two nested loops with an empty body). Worse, Jinja
folds constant expressions while it compiles, which for us is when a version is *saved*, outside any
deadline. So here:

- nothing is evaluated at compile time (no constant folding, filters refuse to run outside a render):
  saving a template only parses it;
- every string a template builds is at most `MAX_STRING_CHARS` long, every list or dict at most
  `MAX_ITEMS` long and every integer at most `MAX_INT_DIGITS` digits; `*`, `**`, `+`, `%` and the
  calls and filters whose arguments set the size of their result (widths, fill counts, separators,
  format widths) are checked *before* they allocate, everything else right after;
- the render deadline is checked on every loop item, call, attribute access and operator;
- `core.render_budget` bounds what one C-level operation can do (the weight of every value built,
  lazy sequences consumed item by item) and the bytes a render builds in all, and keeps functions and
  Jinja's internal objects from being printed anywhere (their text is a memory address).

Limit breaches raise `LimitExceeded`; `templates` turns them into `RenderFailed`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined, Template, nodes, pass_environment
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import make_attrgetter
from jinja2.meta import TrackingCodeGenerator
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum

from promptkeeper.core.render_budget import (
    MAX_STRING_CHARS,
    MAX_WEIGHT,
    RENDER_TIMEOUT,
    LimitExceeded,
    charge,
    check_deadline,
    end_render,
    metered,
    printable,
    render_deadline,
    rendering,
)
from promptkeeper.core.size_checks import (
    MAX_INT_DIGITS,
    MAX_ITEMS,
    MAX_OUTPUT_CHARS,
    check_power,
    check_printf,
    check_product,
    check_str_method,
    check_sum,
    checked,
    filter_precheck,
    refuse,
)

__all__ = [
    "MAX_INT_DIGITS",
    "MAX_ITEMS",
    "MAX_OUTPUT_CHARS",
    "MAX_STRING_CHARS",
    "MAX_WEIGHT",
    "RENDER_TIMEOUT",
    "LimitExceeded",
    "SANDBOX",
    "check_deadline",
    "compile_template",
    "end_render",
    "guard_loops",
    "render_deadline",
    "undeclared_variables",
]

_LOOP_GUARD = "_pk_deadline"

# Filters that do not turn their value into text: every other one prints it (`upper`, `string`,
# `pprint`, `tojson`, `truncate`, ...), so the value must be printable first.
_NOT_PRINTING = frozenset(
    "abs attr batch count d default dictsort first float groupby int items join last length list map"
    " max min random reject rejectattr reverse round select selectattr slice sort sum unique".split()
)


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    passes_first = hasattr(function, "jinja_pass_arg")
    prints = name not in _NOT_PRINTING

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        # As a compile-time constant fold (at save time, outside any deadline) a filter does not run.
        if not rendering():
            raise LimitExceeded("filters run only while rendering")
        check_deadline()
        at = 1 if passes_first else 0
        if len(args) > at:
            value = args[at]
            if isinstance(value, Iterator):
                value = metered(value, MAX_ITEMS)
            elif prints:
                printable(value)
            value = filter_precheck(name, value, list(args[at + 1 :]), kwargs)
            args = (*args[:at], value, *args[at + 1 :])
        return checked(function(*args, **kwargs))

    return guarded


@pass_environment
def _sum(
    environment: Any, iterable: Iterable[Any], attribute: str | int | None = None, start: Any = 0
) -> Any:
    """Jinja's `sum`, but summing sequences one checked step at a time (Python's `sum` of lists is
    quadratic and runs in C, out of the deadline's reach)."""
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    if isinstance(start, int | float) and not isinstance(start, bool):
        return sum(iterable, start)
    total = start
    for item in iterable:
        check_deadline()
        check_sum(total, item)
        total = total + item
    return total


def _lipsum_checked(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:
        if isinstance(n, int) and isinstance(max, int) and n * max * 12 > MAX_STRING_CHARS:
            raise refuse("lorem ipsum")
        return function(n, html, min, max)

    return lipsum


def _each(iterable: Iterable[Any]) -> Iterator[Any]:
    """What every `{% for %}` loops over: the items, with a deadline check before each one."""
    for item in iterable:
        check_deadline()
        yield item


def _output(value: Any) -> Any:
    """What `{{ value }}` prints: never a memory address, and counted as built."""
    if type(value) is not str:
        printable(value)
    charge(value)
    return value


class _PrintingFormatter(SandboxedFormatter):
    """`str.format` fields are printed: `{0!r}`, `{0[1]}`, `{x.items}` must not print an address."""

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        return super().convert_field(printable(value), conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        return super().format_field(printable(value), format_spec)


class _NoFoldingCodeGenerator(CodeGenerator):
    """Compiles with no constant folding: `{{ 'a' * 10**9 }}` must be computed (and refused) while
    rendering, under the limits, not while the version is saved."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if isinstance(node, nodes.TemplateData):
            return super()._output_child_to_const(node, frame, finalize)
        raise nodes.Impossible()

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        """`a ~ b`: each operand printable before `str()` turns it into text, the result checked."""
        join = (
            "(markup_join if context.eval_ctx.volatile else str_join)"
            if frame.eval_ctx.volatile
            else "str_join"
        )
        self.write(f"environment.checked_value({join}((")
        for arg in node.nodes:
            self.write("environment.printed(")
            self.visit(arg, frame)
            self.write("), ")
        self.write(")))")

    def _checked_literal(self, visit: Callable[[Any, Frame], None], node: Any, frame: Frame) -> None:
        """`[s, s, s, s, s]` builds a heavy value as surely as `[s] * 5` does."""
        if getattr(node, "ctx", "load") != "load":
            visit(node, frame)
            return
        self.write("environment.checked_value(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._checked_literal(super().visit_List, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        self._checked_literal(super().visit_Tuple, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._checked_literal(super().visit_Dict, node, frame)


class PromptSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the limits described in the module docstring."""

    code_generator_class = _NoFoldingCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%", "//", "/", "-"})

    def __init__(self) -> None:
        super().__init__(
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            optimized=False,
            finalize=_output,
        )
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters["sum"] = _guard_filter("sum", _sum)
        self.filters[_LOOP_GUARD] = _each
        self.globals["lipsum"] = _lipsum_checked(generate_lorem_ipsum)

    def checked_value(self, value: Any) -> Any:
        return checked(value)

    def printed(self, value: Any) -> Any:
        return printable(value)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        owner: str = value.__self__
        formatter = _PrintingFormatter(self)
        is_format_map = value.__name__ == "format_map"

        def format_checked(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    return wrapper(*args, **kwargs)  # the same TypeError as Python's
                return formatter.vformat(owner, (), args[0])
            return formatter.vformat(owner, args, kwargs)

        return functools.update_wrapper(format_checked, value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_deadline()
        if operator == "**":
            check_power(left, right)
        elif operator == "*":
            check_product(left, right)
        elif operator == "+":
            check_sum(left, right)
        elif operator == "%" and isinstance(left, str):
            check_printf(left, right)
        return checked(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        check_deadline()
        if any(isinstance(arg, Iterator) for arg in args):
            args = tuple(metered(arg, MAX_ITEMS) if isinstance(arg, Iterator) else arg for arg in args)
        method = getattr(obj, "__wrapped__", obj)  # str.format comes wrapped by the sandbox
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            args = check_str_method(owner, getattr(method, "__name__", ""), args, kwargs)
        return checked(super().call(context, obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        check_deadline()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        item = super().getitem(obj, argument)
        if isinstance(argument, slice):
            charge(item)  # a slice is a new value
        return item


class _VariableTracker(TrackingCodeGenerator, _NoFoldingCodeGenerator):
    """`meta.find_undeclared_variables` without its constant folding, which evaluates expressions and
    let `{{ (1).name ~ 'x' }}` raise an `UndefinedError` out of a save."""

    def __init__(self, environment: PromptSandbox) -> None:
        super().__init__(environment)
        self.optimizer = None


def undeclared_variables(ast: nodes.Template) -> set[str]:
    """Names a template reads without setting them."""
    tracker = _VariableTracker(SANDBOX)
    tracker.visit(ast)
    return tracker.undeclared_identifiers


def compile_template(ast: nodes.Template) -> Template:
    """The template compiled to Python. The generated code for a literal subscript (`{{ 1[0] }}`) makes
    Python's compiler warn, which becomes an error wherever warnings are errors: the warning is
    dropped so a save behaves the same everywhere (rendering reports the `TypeError`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        return SANDBOX.from_string(ast)


def guard_loops(ast: nodes.Template) -> None:
    """Make every `{% for %}` iterate through `_each`: even a loop with nothing in it meets the deadline."""
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _LOOP_GUARD, [], [], None, None, lineno=loop.lineno)


SANDBOX = PromptSandbox()
