"""Size checks of the sandbox: each operator, method and filter whose arguments set the size of its
result is checked before it allocates; every value built is checked right after (`checked`).

Why before: `{{ 'a' * 10**9 }}` or `{{ 'x'|center(10**9) }}` would allocate a gigabyte in one C call
that no deadline interrupts. The cost model of each check is next to it; `core.render_budget` holds the
bounds that apply to every value (weight, printing, built bytes).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Iterator
from typing import Any

from jinja2.sandbox import MAX_RANGE

from promptkeeper.core.render_budget import (
    MAX_STRING_CHARS,
    MAX_WEIGHT,
    LimitExceeded,
    charge,
    check_weight,
    heavy,
    metered,
    printable,
    weigh,
)

#: Rendered output beyond this many characters is an error rather than a memory problem.
MAX_OUTPUT_CHARS = MAX_STRING_CHARS
#: Most items a list, tuple, dict or set built by a template may hold (Jinja's own `range()` limit):
#: one filter call on a sequence runs to its end, so the sequence bounds how long that call takes.
MAX_ITEMS = MAX_RANGE
#: Largest integer a template may build, in decimal digits (Python's own int-to-text limit).
MAX_INT_DIGITS = 4300

_MAX_INT_BITS = math.ceil(MAX_INT_DIGITS * math.log2(10))
_WORDWRAP_WORK = 10**10  # about a second of textwrap
_URLIZE_CHARS = 200_000  # about a second of urlize


def _size(value: Any) -> int:
    if isinstance(value, str | bytes | list | tuple | dict | set | frozenset):
        return len(value)
    return 0


def _cap(value: Any) -> int:
    return MAX_STRING_CHARS if isinstance(value, str | bytes) else MAX_ITEMS


def checked(value: Any) -> Any:
    """`value`, if within the limits: applied to the result of every operator, call and filter."""
    if type(value) is str:  # the common case, first
        if len(value) > MAX_STRING_CHARS:
            raise LimitExceeded(f"text is longer than {MAX_STRING_CHARS} characters")
        charge(value)
        return value
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise LimitExceeded(f"number has more than {MAX_INT_DIGITS} digits")
    if _size(value) > _cap(value):
        raise LimitExceeded(f"{_what(value)} is longer than {_cap(value)} {_unit(value)}")
    check_weight(value)
    charge(value)
    return value


def _what(value: Any) -> str:
    return "text" if isinstance(value, str | bytes) else type(value).__name__


def _unit(value: Any) -> str:
    return "characters" if isinstance(value, str | bytes) else "items"


def refuse(what: str, cap: int = MAX_STRING_CHARS, unit: str = "characters") -> LimitExceeded:
    return LimitExceeded(f"{what} would be longer than {cap} {unit}")


def check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if (abs(base).bit_length() - 1) * exponent > _MAX_INT_BITS:
            raise LimitExceeded(f"number would have more than {MAX_INT_DIGITS} digits")


def check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > _MAX_INT_BITS + 1:
            raise LimitExceeded(f"number would have more than {MAX_INT_DIGITS} digits")
        return
    for sequence, count in ((left, right), (right, left)):
        if isinstance(count, int) and _size(sequence) * max(count, 0) > _cap(sequence):
            raise refuse(f"repeated {_what(sequence)}", _cap(sequence), _unit(sequence))
        if isinstance(count, int) and isinstance(sequence, list | tuple) and count > 0:
            if weigh(sequence, MAX_WEIGHT) * count > MAX_WEIGHT:
                raise heavy(f"repeated {_what(sequence)}")


def check_sum(left: Any, right: Any) -> None:
    if _size(left) + _size(right) > _cap(left):
        raise refuse(f"joined {_what(left)}", _cap(left), _unit(left))
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        if weigh(left, MAX_WEIGHT) + weigh(right, MAX_WEIGHT) > MAX_WEIGHT:
            raise heavy(f"joined {_what(left)}")


_PRINTF_NUMBERS = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_widths(numbers: Iterable[str], args: Iterable[Any]) -> None:
    """Field widths and precisions in a format string, and `*`/nested ones taken from the arguments."""
    star = False
    for number in numbers:
        if number in ("*", "{"):
            star = True
        elif number and int(number) > MAX_STRING_CHARS:
            raise refuse("formatted field")
    if star and any(isinstance(a, int) and a > MAX_STRING_CHARS for a in args):
        raise refuse("formatted field")


def check_printf(template: str, args: Any) -> None:
    values = args.values() if isinstance(args, dict) else args if isinstance(args, tuple) else (args,)
    for value in values:
        printable(value)
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
        raise refuse("replaced text")


def _check_join(items: Any, separator: Any) -> list[Any]:
    materialised = list(metered(items, MAX_ITEMS) if isinstance(items, Iterator) else items)
    if len(materialised) > MAX_ITEMS:
        raise refuse("joined list", MAX_ITEMS, "items")
    printable(materialised)
    if len(materialised) * _size(str(separator)) > MAX_STRING_CHARS:
        raise refuse("joined text")
    return materialised


def _check_width(width: Any) -> None:
    if isinstance(width, int) and width > MAX_STRING_CHARS:
        raise refuse("padded text")


def check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Pre-checks for the `str` methods whose arguments set the size of their result."""
    if name in ("center", "ljust", "rjust", "zfill"):
        _check_width(args[0] if args else kwargs.get("width"))
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int) and (text.count("\t") + 1) * size > MAX_STRING_CHARS:
            raise refuse("expanded text")
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
def filter_precheck(name: str, value: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    def arg(index: int, key: str, default: Any = None) -> Any:
        return args[index] if len(args) > index else kwargs.get(key, default)

    if name == "center":
        _check_width(arg(0, "width"))
    elif name == "indent":
        width = arg(0, "width", 4)
        unit = width if isinstance(width, int) else _size(str(width))
        if _lines(value) * unit > MAX_STRING_CHARS:
            raise refuse("indented text")
    elif name == "replace":
        _check_replace(value, arg(0, "old", ""), arg(1, "new", ""))
    elif name == "join":
        return _check_join(value, arg(0, "d", ""))
    elif name == "format":
        check_printf(str(value), tuple(args) or kwargs)
    elif name in ("batch", "slice"):
        count = arg(0, "linecount" if name == "batch" else "slices")
        if isinstance(count, int) and count > MAX_ITEMS:
            raise refuse(f"{name} result", MAX_ITEMS, "items")
    elif name == "wordwrap":
        length, width = _size(str(value)), arg(0, "width", 79)
        wrapstring = arg(3, "wrapstring")
        if wrapstring is not None and length * (1 + _size(str(wrapstring))) > MAX_STRING_CHARS:
            raise refuse("wrapped text")
        # Python's textwrap splits a long word by copying the rest of it each time: length**2 / width
        if isinstance(width, int) and length * length > _WORDWRAP_WORK * max(width, 1):
            raise LimitExceeded(f"wordwrap of {length} characters at width {width} would take too long")
    elif name == "urlize" and _size(str(value)) > _URLIZE_CHARS:
        raise LimitExceeded(f"urlize of more than {_URLIZE_CHARS} characters would take too long")
    return value
