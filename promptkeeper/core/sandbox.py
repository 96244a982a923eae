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
- functions and Jinja's internal objects cannot be printed (their text is a memory address).

Limit breaches raise `LimitExceeded`; `templates` turns them into `RenderFailed`.
"""

from __future__ import annotations

import contextvars
import functools
import math
import re
import string
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined, Template, nodes, pass_environment
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.meta import TrackingCodeGenerator
from jinja2.runtime import Context, LoopContext, Macro, TemplateReference, Undefined
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace, generate_lorem_ipsum

__all__ = [
    "MAX_INT_DIGITS",
    "MAX_ITEMS",
    "MAX_OUTPUT_CHARS",
    "MAX_STRING_CHARS",
    "RENDER_TIMEOUT",
    "LimitExceeded",
    "SANDBOX",
    "compile_template",
    "guard_loops",
    "render_deadline",
    "undeclared_variables",
]

#: Rendered output beyond this many characters is an error rather than a memory problem.
MAX_OUTPUT_CHARS = 1_000_000
#: Longest string a template may build, in characters.
MAX_STRING_CHARS = MAX_OUTPUT_CHARS
#: Most items a list, tuple, dict or set built by a template may hold (Jinja's own `range()` limit):
#: one filter call on a sequence runs to its end, so the sequence bounds how long that call takes.
MAX_ITEMS = MAX_RANGE
#: Largest integer a template may build, in decimal digits (Python's own int-to-text limit).
MAX_INT_DIGITS = 4300
#: Seconds one render may take.
RENDER_TIMEOUT = 2.0

_MAX_INT_BITS = math.ceil(MAX_INT_DIGITS * math.log2(10))
_LOOP_GUARD = "_pk_deadline"
_WORDWRAP_WORK = 10**10  # about a second of textwrap
_URLIZE_CHARS = 200_000  # about a second of urlize


class LimitExceeded(Exception):
    """A template went past a size or time limit (or evaluated outside a render)."""


_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("promptkeeper_render_deadline", default=0.0)


def render_deadline() -> contextvars.Token[float]:
    """Start the clock of one render; reset the returned token when the render ends."""
    return _deadline.set(time.monotonic() + RENDER_TIMEOUT)


def end_render(token: contextvars.Token[float]) -> None:
    _deadline.reset(token)


def check_deadline() -> None:
    deadline = _deadline.get()
    if deadline and time.monotonic() > deadline:
        raise LimitExceeded(f"rendering took longer than {RENDER_TIMEOUT:g} s")


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        return len(value)
    return 0


def _cap(value: Any) -> int:
    return MAX_STRING_CHARS if isinstance(value, str | bytes) else MAX_ITEMS


def checked(value: Any) -> Any:
    """`value`, if within the limits: applied to the result of every operator, call and filter."""
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise LimitExceeded(f"number has more than {MAX_INT_DIGITS} digits")
    if _size(value) > _cap(value):
        raise LimitExceeded(f"{_what(value)} is longer than {_cap(value)} {_unit(value)}")
    return value


def _what(value: Any) -> str:
    return "text" if isinstance(value, str | bytes) else type(value).__name__


def _unit(value: Any) -> str:
    return "characters" if isinstance(value, str | bytes) else "items"


def _refuse(what: str, cap: int = MAX_STRING_CHARS, unit: str = "characters") -> LimitExceeded:
    return LimitExceeded(f"{what} would be longer than {cap} {unit}")


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if (abs(base).bit_length() - 1) * exponent > _MAX_INT_BITS:
            raise LimitExceeded(f"number would have more than {MAX_INT_DIGITS} digits")


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > _MAX_INT_BITS + 1:
            raise LimitExceeded(f"number would have more than {MAX_INT_DIGITS} digits")
        return
    for sequence, count in ((left, right), (right, left)):
        if isinstance(count, int) and _size(sequence) * max(count, 0) > _cap(sequence):
            raise _refuse(f"repeated {_what(sequence)}", _cap(sequence), _unit(sequence))


def _check_sum(left: Any, right: Any) -> None:
    if _size(left) + _size(right) > _cap(left):
        raise _refuse(f"joined {_what(left)}", _cap(left), _unit(left))


_PRINTF_NUMBERS = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_widths(numbers: Iterable[str], args: Iterable[Any]) -> None:
    """Field widths and precisions in a format string, and `*`/nested ones taken from the arguments."""
    star = False
    for number in numbers:
        if number in ("*", "{"):
            star = True
        elif number and int(number) > MAX_STRING_CHARS:
            raise _refuse("formatted field")
    if star and any(isinstance(a, int) and a > MAX_STRING_CHARS for a in args):
        raise _refuse("formatted field")


def _check_printf(template: str, args: Any) -> None:
    values = args.values() if isinstance(args, dict) else args if isinstance(args, tuple) else (args,)
    numbers = [n for match in _PRINTF_NUMBERS.finditer(template) for n in match.groups() if n]
    _check_widths(numbers, values)


def _check_str_format(template: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    numbers: list[str] = []
    try:
        for _, _, spec, _ in string.Formatter().parse(template):
            if spec:
                numbers.extend("{" if "{" in spec else n for n in re.findall(r"\{|\d+", spec))
    except ValueError:
        return  # the call itself reports the malformed format string
    _check_widths(numbers, [*args, *kwargs.values()])


def _lines(text: Any) -> int:
    return str(text).count("\n") + 1


def _check_replace(text: Any, old: Any, new: Any) -> None:
    text, old, new = str(text), str(old), str(new)
    occurrences = text.count(old) if old else len(text) + 1
    if len(text) + occurrences * len(new) > MAX_STRING_CHARS:
        raise _refuse("replaced text")


def _check_join(items: Any, separator: Any) -> list[Any]:
    materialised = list(items)
    if len(materialised) > MAX_ITEMS:
        raise _refuse("joined list", MAX_ITEMS, "items")
    if len(materialised) * _size(str(separator)) > MAX_STRING_CHARS:
        raise _refuse("joined text")
    return materialised


def _check_width(width: Any) -> None:
    if isinstance(width, int) and width > MAX_STRING_CHARS:
        raise _refuse("padded text")


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Pre-checks for the `str` methods whose arguments set the size of their result."""
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_width(args[0] if args else kwargs.get("width"))
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int) and (text.count("\t") + 1) * size > MAX_STRING_CHARS:
            raise _refuse("expanded text")
    elif name == "replace" and len(args) >= 2:
        _check_replace(text, args[0], args[1])
    elif name == "join" and args:
        return (_check_join(args[0], text), *args[1:])
    elif name in ("format", "format_map"):
        mapping = args[0] if name == "format_map" and args and isinstance(args[0], dict) else {}
        _check_str_format(text, args, {**kwargs, **mapping})
    return args


# Filters whose arguments set the size of their result: checked before they run. The first argument
# after the value is at index 0 of `args`.
def _filter_precheck(name: str, value: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    def arg(index: int, key: str, default: Any = None) -> Any:
        return args[index] if len(args) > index else kwargs.get(key, default)

    if name == "center":
        _check_width(arg(0, "width"))
    elif name == "indent":
        width = arg(0, "width", 4)
        unit = width if isinstance(width, int) else _size(str(width))
        if _lines(value) * unit > MAX_STRING_CHARS:
            raise _refuse("indented text")
    elif name == "replace":
        _check_replace(value, arg(0, "old", ""), arg(1, "new", ""))
    elif name == "join":
        return _check_join(value, arg(0, "d", ""))
    elif name == "format":
        _check_printf(str(value), tuple(args) or kwargs)
    elif name in ("batch", "slice"):
        count = arg(0, "linecount" if name == "batch" else "slices")
        if isinstance(count, int) and count > MAX_ITEMS:
            raise _refuse(f"{name} result", MAX_ITEMS, "items")
    elif name == "wordwrap":
        length, width = _size(str(value)), arg(0, "width", 79)
        wrapstring = arg(3, "wrapstring")
        if wrapstring is not None and length * (1 + _size(str(wrapstring))) > MAX_STRING_CHARS:
            raise _refuse("wrapped text")
        # Python's textwrap splits a long word by copying the rest of it each time: length**2 / width
        if isinstance(width, int) and length * length > _WORDWRAP_WORK * max(width, 1):
            raise LimitExceeded(f"wordwrap of {length} characters at width {width} would take too long")
    elif name == "urlize" and _size(str(value)) > _URLIZE_CHARS:
        raise LimitExceeded(f"urlize of more than {_URLIZE_CHARS} characters would take too long")
    return value


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    passes_first = hasattr(function, "jinja_pass_arg")

    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        # As a compile-time constant fold (at save time, outside any deadline) a filter does not run.
        if not _deadline.get():
            raise LimitExceeded("filters run only while rendering")
        check_deadline()
        at = 1 if passes_first else 0
        if len(args) > at:
            value = _filter_precheck(name, args[at], list(args[at + 1 :]), kwargs)
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
        _check_sum(total, item)
        total = total + item
    return total


def _lipsum_checked(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:
        if isinstance(n, int) and isinstance(max, int) and n * max * 12 > MAX_STRING_CHARS:
            raise _refuse("lorem ipsum")
        return function(n, html, min, max)

    return lipsum


def _each(iterable: Iterable[Any]) -> Iterator[Any]:
    """What every `{% for %}` loops over: the items, with a deadline check before each one."""
    for item in iterable:
        check_deadline()
        yield item


_UNPRINTABLE = (TemplateReference, Context, LoopContext, Cycler, Joiner, Namespace, Macro)


def _printable(value: Any) -> Any:
    """`{{ value }}` of a function, class or Jinja internal prints a memory address: refuse it."""
    if isinstance(value, Undefined):
        return value  # printing it raises the missing-variable error
    if callable(value) or isinstance(value, _UNPRINTABLE):
        raise SecurityError(f"a {type(value).__name__} cannot be printed")
    if isinstance(value, Iterator):
        raise SecurityError(f"a {type(value).__name__} cannot be printed (add '|list')")
    return value


class _NoFoldingCodeGenerator(CodeGenerator):
    """Compiles with no constant folding: `{{ 'a' * 10**9 }}` must be computed (and refused) while
    rendering, under the limits, not while the version is saved."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if isinstance(node, nodes.TemplateData):
            return super()._output_child_to_const(node, frame, finalize)
        raise nodes.Impossible()

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_value(")
        super().visit_Concat(node, frame)
        self.write(")")


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
            finalize=_printable,
        )
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters["sum"] = _guard_filter("sum", _sum)
        self.filters[_LOOP_GUARD] = _each
        self.globals["lipsum"] = _lipsum_checked(generate_lorem_ipsum)

    def checked_value(self, value: Any) -> Any:
        return checked(value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_deadline()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        elif operator == "+":
            _check_sum(left, right)
        elif operator == "%" and isinstance(left, str):
            _check_printf(left, right)
        return checked(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        check_deadline()
        method = getattr(obj, "__wrapped__", obj)  # str.format comes wrapped by the sandbox
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            args = _check_str_method(owner, getattr(method, "__name__", ""), args, kwargs)
        return checked(super().call(context, obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        check_deadline()
        return super().getattr(obj, attribute)


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
