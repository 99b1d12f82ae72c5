"""The bounds under flows' templates and conditions (`flows.expressions`): an allocation
budget per evaluation, operators and method calls checked BEFORE they allocate, and a watchdog
that stops an evaluation past its time limit.

Sizes are counted in characters (strings) or items (lists), with nested containers walked as
`str()` would print them (a shared reference counts every time it is printed).
"""

from __future__ import annotations

import contextvars
import ctypes
import re
import string
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from simpleeval import FeatureNotAvailable

MAX_VALUE_SIZE = 1_000_000    # characters of a string, items of a list, digits' worth of bits
MAX_TOTAL_SIZE = 5_000_000    # everything one render/evaluation may allocate through operators
MAX_INT_BITS = 64_000         # ≈ 19,000 decimal digits
DEFAULT_TIME_LIMIT_S = 1.0

_T = TypeVar("_T")


class ExpressionError(Exception):
    """A condition or template failed at run time; the message names the expression."""


class ExpressionTooLarge(ExpressionError):
    """An operation would have allocated more than the bounds allow; nothing was allocated."""


class ExpressionTimeout(ExpressionError):
    pass


class ExpressionRefused(ExpressionError):
    """The sandbox refused an operation (Python internals, in-place changes)."""


# --- allocation budget (per render/evaluation, per thread) -------------------------------------

_budget = threading.local()


def start_budget() -> None:
    _budget.used = 0


def charge(size: int, what: str) -> None:
    if size > MAX_VALUE_SIZE:
        raise ExpressionTooLarge(f"{what} would make a value of {size:,} characters/items"
                                 f" (at most {MAX_VALUE_SIZE:,})")
    used = getattr(_budget, "used", 0) + size
    if used > MAX_TOTAL_SIZE:
        raise ExpressionTooLarge(f"{what}: the expression allocates more than"
                                 f" {MAX_TOTAL_SIZE:,} characters/items in all")
    _budget.used = used


_CONTAINERS = (list, tuple, set, frozenset, dict)


def printed_size(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """A bound on how large `value` is once printed (characters/items, nested containers
    walked, shared references counted each time: that is what `str()` would produce). Stops
    counting once past `limit`."""
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bytes or kind is bytearray:
            total += len(item)
            continue
        if kind is int:
            total += item.bit_length() // 3 + 1
            continue
        if kind is dict:
            total += len(item) + 2
            elements: Iterable[Any] = (*item.keys(), *item.values())
        elif isinstance(item, _CONTAINERS):
            total += len(item) + 2
            elements = item
        elif kind is range:
            total += len(item)
            continue
        else:
            total += 8
            continue
        for element in elements:
            kind = type(element)
            if kind is str:
                total += len(element)
            elif kind is int:
                # Small ints are counted by the container's length; big ones print long.
                bits = element.bit_length()
                if bits > 64:
                    total += bits // 3
            elif isinstance(element, _CONTAINERS):
                stack.append(element)
            if total > limit:
                break
    return total


def check_printable(value: Any, what: str) -> Any:
    size = printed_size(value)
    if size > MAX_VALUE_SIZE:
        raise ExpressionTooLarge(f"{what}: a value of more than {MAX_VALUE_SIZE:,}"
                                 " characters/items")
    return value


# --- bounded operators (shared by Jinja and simpleeval) ---------------------------------------

def _is_seq(value: Any) -> bool:
    return isinstance(value, (str, bytes, list, tuple))


def _bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def bounded_mul(a: Any, b: Any) -> Any:
    if _is_seq(a) and isinstance(b, int):
        charge(len(a) * max(b, 0), "repetition")
    elif _is_seq(b) and isinstance(a, int):
        charge(len(b) * max(a, 0), "repetition")
    elif isinstance(a, int) and isinstance(b, int) and _bits(a) + _bits(b) > MAX_INT_BITS:
        raise ExpressionTooLarge(f"a product of {_bits(a) + _bits(b):,} bits"
                                 f" (at most {MAX_INT_BITS:,})")
    return a * b


def bounded_pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        if b > MAX_INT_BITS or b * _bits(a) > MAX_INT_BITS:
            raise ExpressionTooLarge(f"a power of about {b * _bits(a):,} bits"
                                     f" (at most {MAX_INT_BITS:,})")
    elif (isinstance(a, (int, float)) and isinstance(b, (int, float))
          and abs(b) > MAX_INT_BITS):
        raise ExpressionTooLarge(f"an exponent of {b} (at most {MAX_INT_BITS:,})")
    return a ** b


def bounded_add(a: Any, b: Any) -> Any:
    if _is_seq(a) and _is_seq(b):
        charge(len(a) + len(b), "concatenation")
    return a + b


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[a-zA-Z%]")


def _format_numbers(spec: str) -> Iterable[int]:
    for number in re.findall(r"\d+", spec):
        yield int(number)


def bounded_mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):
        specs = _PERCENT_SPEC.findall(a)
        for width, precision in specs:
            if "*" in (width, precision):
                raise ExpressionTooLarge("'*' widths in % formatting are not allowed")
            if max(int(width or 0), int(precision or 0)) > MAX_VALUE_SIZE:
                raise ExpressionTooLarge(f"a % format width over {MAX_VALUE_SIZE:,}")
        charge(len(a) + len(specs) * printed_size(b) + sum(int(w or 0) for w, _ in specs),
                "% formatting")
    return a % b


def bounded_lshift(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and _bits(a) + max(b, 0) > MAX_INT_BITS:
        raise ExpressionTooLarge(f"a shift to {_bits(a) + b:,} bits (at most {MAX_INT_BITS:,})")
    return a << b


def bounded_concat(parts: Iterable[Any]) -> str:
    """Jinja's `~`."""
    texts = [str(check_printable(p, "~")) for p in parts]
    charge(sum(len(t) for t in texts), "~ concatenation")
    return "".join(texts)


def bounded_str(value: Any = "") -> str:
    return str(check_printable(value, "str()"))


def _format_size(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """What `fmt.format(*args, **kwargs)` could produce, refusing nested/huge widths."""
    fields = 0
    widths = 0
    for _literal, name, spec, _conv in string.Formatter().parse(fmt):
        if name is None:
            continue
        fields += 1
        if spec and "{" in spec:
            raise ExpressionTooLarge("nested replacement fields in a format spec are not allowed")
        for number in _format_numbers(spec or ""):
            if number > MAX_VALUE_SIZE:
                raise ExpressionTooLarge(f"a format width over {MAX_VALUE_SIZE:,}")
            widths += number
    largest = max([printed_size(v) for v in (*args, *kwargs.values())] or [0])
    return len(fmt) + fields * largest + widths


_MUTATORS = frozenset({
    "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "update",
    "setdefault", "popitem", "add", "discard", "difference_update", "intersection_update",
    "symmetric_difference_update",
})


def check_call(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a method call that would allocate beyond the bounds, before it runs."""
    owner = getattr(func, "__self__", None)
    name = getattr(func, "__name__", "")
    if isinstance(owner, (list, dict, set, bytearray)) and name in _MUTATORS:
        raise FeatureNotAvailable(f"{type(owner).__name__}.{name}() changes a value in place;"
                                  " not allowed in flow expressions")
    if isinstance(owner, (str, bytes)):
        size = len(owner)
        if name in ("ljust", "rjust", "center", "zfill"):
            width = args[0] if args else kwargs.get("width", 0)
            if isinstance(width, int):
                charge(max(width, size), f"str.{name}")
        elif name == "expandtabs":
            tabsize = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(tabsize, int):
                tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
                charge(size + tabs * max(tabsize, 0), "str.expandtabs")
        elif name == "join":
            items = args[0] if args else ()
            if isinstance(items, (list, tuple, range, str)):
                count = len(items)
                charge(sum(printed_size(i) for i in items) + size * count
                        if count <= MAX_VALUE_SIZE else count, "str.join")
        elif name == "replace" and len(args) >= 2:
            old, new = args[0], args[1]
            count = args[2] if len(args) > 2 else kwargs.get("count", -1)
            hits = owner.count(old) if old else size + 1
            if isinstance(count, int) and count >= 0:
                hits = min(hits, count)
            charge(size + hits * max(len(new) - len(old), 0), "str.replace")
        elif name in ("format", "format_map"):
            if name == "format_map":
                mapping = args[0] if args else {}
                kwargs = dict(mapping) if isinstance(mapping, dict) else {}
                args = ()
            charge(_format_size(owner if isinstance(owner, str) else "", args, kwargs),
                    f"str.{name}")
        elif name in ("encode", "upper", "lower", "title", "casefold", "swapcase",
                      "capitalize", "translate"):
            charge(size * 3, f"str.{name}")
    elif isinstance(owner, int) and name == "to_bytes":
        length = args[0] if args else kwargs.get("length", 1)
        if isinstance(length, int):
            charge(length, "int.to_bytes")


MAX_RANGE = 100_000


def bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise ExpressionTooLarge(f"range() of {len(result):,} items (at most {MAX_RANGE:,})")
    charge(len(result), "range()")
    return result


# --- the time limit ---------------------------------------------------------------------------

class _Overrun(BaseException):
    """Raised inside the evaluating thread by the watchdog (not an Exception, so that user-level
    `except Exception` in our own helpers cannot swallow it)."""


_REFIRE_S = 0.05
# An evaluation stuck in one C call cannot be interrupted: past this much beyond its limit the
# caller stops waiting (the abandoned thread is a daemon and ends when the call returns).
_GIVE_UP_S = 5.0


class _Watchdog:
    """Runs each evaluation on a thread of its own and raises `_Overrun` in that thread once it
    passes its deadline. CPython checks for it between bytecodes, so it interrupts Jinja/
    simpleeval loops; single C-level operations are already bounded by the size checks above.

    The thread is the evaluation's alone because an asynchronous exception cannot be withdrawn
    reliably: one that arrives after the evaluation finished lands in whatever that thread runs
    next. Had it been the caller's thread (a Ray worker's event loop, an executor's pool thread)
    it would break unrelated work; here it can only end a thread that was ending anyway."""

    def run(self, fn: Callable[[], _T], limit_s: float, what: str) -> _T:
        outcome: dict[str, Any] = {}
        context = contextvars.copy_context()

        def evaluate() -> None:
            try:
                try:
                    outcome["value"] = context.run(fn)
                except _Overrun:
                    pass
                except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                    outcome["error"] = exc
            except _Overrun:
                pass  # a second firing landed in the handler: the outcome is already decided

        thread = threading.Thread(target=evaluate, name="aico-expression", daemon=True)
        deadline = time.monotonic() + limit_s
        thread.start()
        thread.join(limit_s)
        while thread.is_alive() and time.monotonic() < deadline + _GIVE_UP_S:
            # Keep firing until the thread ends: an exception raised inside a finalizer
            # (`__del__`) that runs during the evaluation is swallowed by Python, and the
            # evaluation would go on unbounded.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread.ident or 0), ctypes.py_object(_Overrun))
            thread.join(_REFIRE_S)
        if "value" in outcome:
            return cast(_T, outcome["value"])
        if "error" in outcome:
            raise outcome["error"]
        raise ExpressionTimeout(f"{what} took longer than {limit_s:g} s")


watchdog = _Watchdog()
