"""Templates (`{{ variable }}`, Jinja2's sandbox) and conditions (`when`, simpleeval): the two
small languages a flow document may contain. Neither can reach Python internals or `eval`, and
neither can make the process allocate or spin without bound:

- every operation that can grow a value (`*`, `**`, `+`, `%`, `~`, `<<`, string methods such
  as `ljust`/`center`/`zfill`/`join`/`replace`/`format`/`expandtabs`, `int.to_bytes`, Jinja
  filters such as `center`/`indent`/`join`/`replace`/`format`/`batch`) is checked BEFORE it
  runs: no single value over `MAX_VALUE_SIZE` characters/items, and no evaluation that
  allocates more than `MAX_TOTAL_SIZE` in all;
- Jinja's constant folding is off (`{{ 'a' * 100000000 }}` would otherwise be computed when the
  flow is saved), and flow templates are expressions, `if`, `for` and plain `set` only: no
  macros, block assignments, call/filter blocks, includes or imports;
- the output is produced as a stream and cut at `MAX_RENDERED_CHARS` while rendering;
- a conditions' evaluator cannot mutate lists/dicts (no self-extension) or reach `_` names;
- each render/evaluation runs under a time limit (a watchdog raises in the evaluating thread);
  the `*_async` forms run it off the event loop.

The same checks run at save time (`check_template`, `check_condition`) and at run time.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, ClassVar

from jinja2 import TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from simpleeval import (
    DEFAULT_OPERATORS,
    EvalWithCompoundTypes,
    FeatureNotAvailable,
    InvalidExpression,
)

from flows.expression_bounds import (
    DEFAULT_TIME_LIMIT_S,
    MAX_VALUE_SIZE,
    ExpressionError,
    ExpressionRefused,
    ExpressionTimeout,
    ExpressionTooLarge,
    bounded_add,
    bounded_concat,
    bounded_lshift,
    bounded_mod,
    bounded_mul,
    bounded_pow,
    bounded_range,
    bounded_str,
    charge,
    check_call,
    check_printable,
    printed_size,
    start_budget,
    watchdog,
)

MAX_RENDERED_CHARS = 50_000
# Evaluations run here, off the event loop (each one still bounded by the watchdog).
_workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="aico-expr")


# --- Jinja ------------------------------------------------------------------------------------

class _BoundedCodeGenerator(CodeGenerator):
    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


_FORBIDDEN_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.AssignBlock, nodes.Extends,
    nodes.Include, nodes.Import, nodes.FromImport, nodes.Block, nodes.Scope, nodes.With,
)


# Filters whose output is at most this many times their input, whatever their arguments.
_FILTER_GROWTH = {
    "abs": 1, "attr": 1, "count": 1, "d": 1, "default": 1, "dictsort": 1, "first": 1,
    "float": 1, "groupby": 1, "int": 1, "items": 1, "last": 1, "length": 1, "list": 1,
    "map": 1, "max": 1, "min": 1, "random": 1, "reject": 1, "rejectattr": 1, "reverse": 1,
    "round": 1, "safe": 1, "select": 1, "selectattr": 1, "sort": 1, "striptags": 1,
    "sum": 1, "trim": 1, "unique": 1, "wordcount": 1, "filesizeformat": 1, "string": 2,
    "pprint": 2, "lower": 3, "upper": 3, "title": 3, "capitalize": 3, "urlencode": 3,
    "e": 6, "escape": 6, "forceescape": 6, "tojson": 6,
}


def _filter_guard(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    # pass_context / pass_eval_context / pass_environment filters get that object first.
    skip = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(fn)  # keeps `jinja_pass_arg`, which tells Jinja what to pass
    def guarded(*args: Any, **kwargs: Any) -> Any:
        values = list(args[skip:])
        for value in (*values, *kwargs.values()):
            check_printable(value, f"filter {name}")
        value = values[0] if values else ""
        rest = [*values[1:], *kwargs.values()]
        size = printed_size(value)
        numbers = [v for v in rest if isinstance(v, int)]
        texts = [len(v) for v in rest if isinstance(v, str)]
        if name in ("center", "indent", "batch", "truncate", "slice"):
            lines = str(value).count("\n") + 1 if name == "indent" else 1
            charge(size + (max(numbers, default=0) + max(texts, default=0)) * lines,
                   f"filter {name}")
        elif name == "wordwrap":
            width = max(min(numbers, default=79), 1)
            charge(size + (size // width + 1) * max(texts, default=1), "filter wordwrap")
        elif name == "join":
            sep = values[1] if len(values) > 1 else kwargs.get("d", "")
            charge(size + size * len(str(sep)), "filter join")
        elif name == "replace":
            if len(values) >= 3:
                check_call(str(value).replace, tuple(values[1:]), {})
        elif name == "format":
            bounded_mod(str(value), tuple(values[1:]) if len(values) > 1
                        else tuple(kwargs.values()))
        elif name in _FILTER_GROWTH:
            charge(size * _FILTER_GROWTH[name], f"filter {name}")
        else:
            # Anything else (urlize, xmlattr, ...): as if each string argument could be
            # repeated once per input character.
            charge(size * (1 + sum(texts)) + sum(max(n, 0) for n in numbers),
                   f"filter {name}")
        result = fn(*args, **kwargs)
        if isinstance(result, (str, list, tuple)):
            charge(len(result), f"filter {name}")
        return result

    return guarded


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with every growing operation checked before it runs."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    _BINOPS: ClassVar[dict[str, Callable[[Any, Any], Any]]] = {
        "*": bounded_mul, "**": bounded_pow, "+": bounded_add, "%": bounded_mod}

    def __init__(self) -> None:
        # optimized=False: no constant folding, so nothing is evaluated when a flow is saved.
        super().__init__(autoescape=False, keep_trailing_newline=True, optimized=False,
                         finalize=lambda value: check_printable(value, "output"))
        self.bounded_concat = bounded_concat
        # No `lipsum` (it allocates what it is asked for); a bounded `range`.
        self.globals = {**{k: v for k, v in self.globals.items() if k != "lipsum"},
                        "range": bounded_range}
        self.filters = {name: _filter_guard(name, fn) for name, fn in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return self._BINOPS[operator](left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        check_call(obj, args, kwargs)
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # Jinja replaces str.format/format_map at attribute access with its own wrapper, so
        # the bound method never reaches `call`: check the sizes in front of that wrapper.
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None

        def checked(*args: Any, **kwargs: Any) -> str:
            check_call(value, args, kwargs)
            return wrapped(*args, **kwargs)

        return checked


_env = BoundedSandbox()


def _forbidden_construct(source: str) -> str | None:
    tree = _env.parse(source)
    for node in tree.find_all(_FORBIDDEN_NODES):
        name = type(node).__name__
        return (f"{name} is not allowed in a flow template (use expressions, if, for and"
                f" set; line {node.lineno})")
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        arg = getattr(node, "arg", None)
        attr = node.attr if isinstance(node, nodes.Getattr) else (
            arg.value if isinstance(arg, nodes.Const) else None)
        if isinstance(attr, str) and attr.startswith("_"):
            return (f"attribute {attr!r}: names starting with '_' (Python internals) are not"
                    f" allowed (line {node.lineno})")
    return None


@lru_cache(maxsize=4096)
def _template(source: str) -> Any:
    problem = _forbidden_construct(source)
    if problem:
        raise TemplateSyntaxError(problem, 1)
    return _env.from_string(source)


SAVE_TRIAL_S = 0.05
# Within `trial_budget`: seconds of save-time trials left for the whole document.
_trial_left: ContextVar[float | None] = ContextVar("aico_expression_trial_left", default=None)


@contextmanager
def trial_budget(total_s: float) -> Iterator[None]:
    """Bound the save-time trials of every template and condition checked inside, together
    (a document of many slow-but-not-too-slow templates cannot hold the API up)."""
    token = _trial_left.set(total_s)
    try:
        yield
    finally:
        _trial_left.reset(token)


def _trial(run: Callable[[float], Any]) -> None:
    left = _trial_left.get()
    if left is not None and left <= 0:
        return
    limit = SAVE_TRIAL_S if left is None else min(SAVE_TRIAL_S, left)
    started = time.monotonic()
    try:
        run(limit)
    finally:
        if left is not None:
            _trial_left.set(left - (time.monotonic() - started))


def check_template(source: str) -> str | None:
    """Why `source` cannot be saved, or None. Besides syntax, the allowed constructs and `_`
    attributes, it is rendered once with no variables, briefly: what is constant in it
    (`'a' * 10**8`) is refused now, by the same size bounds as at run time."""
    try:
        _template(source)
    except TemplateSyntaxError as exc:
        return f"{exc.message} (line {exc.lineno})"
    if "{" in source:
        try:
            _trial(lambda limit: render(source, {}, time_limit_s=limit))
        except (ExpressionTooLarge, ExpressionRefused) as exc:
            return str(exc).split(": ", 1)[-1]
        except ExpressionError:
            # Undefined variables and the like are defined when the flow runs. A trial that
            # runs out of time proves nothing on a busy machine: the run-time limit decides.
            pass
    return None


def _render_now(source: str, variables: dict[str, Any]) -> str:
    start_budget()
    parts: list[str] = []
    size = 0
    for chunk in _template(source).generate(variables):
        parts.append(chunk)
        size += len(chunk)
        if size >= MAX_RENDERED_CHARS:
            break  # the output is capped while it is produced, not after
    return "".join(parts)[:MAX_RENDERED_CHARS]


def render(source: str, variables: dict[str, Any], *,
           time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> str:
    """Render in the calling thread (bounded in size and time). Prefer `render_async` on the
    event loop."""
    if "{" not in source:
        return source
    try:
        return watchdog.run(lambda: _render_now(source, variables), time_limit_s,
                             "rendering")
    except ExpressionError as exc:
        raise type(exc)(f"template {source[:80]!r}: {exc}") from None
    except (SecurityError, FeatureNotAvailable) as exc:
        raise ExpressionRefused(f"template {source[:80]!r}: {exc}") from None
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"template {source[:80]!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - type errors and the like in user templates
        raise ExpressionError(f"template {source[:80]!r}: {type(exc).__name__}: {exc}") from None


async def render_async(source: str, variables: dict[str, Any], *,
                       time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> str:
    """`render`, off the event loop (a small worker pool)."""
    if "{" not in source:
        return source
    return await asyncio.get_running_loop().run_in_executor(
        _workers, lambda: render(source, variables, time_limit_s=time_limit_s))


# --- conditions (simpleeval) ------------------------------------------------------------------

# Pure helpers a condition may call; nothing that touches the outside world.
_FUNCTIONS = {
    "len": len, "str": bounded_str, "int": int, "float": float, "bool": bool, "abs": abs,
    "min": min, "max": max, "round": round, "lower": lambda s: bounded_str(s).lower(),
    "contains": lambda haystack, needle: bounded_str(needle).lower() in bounded_str(
        haystack).lower(),
}

_OPERATORS = {**DEFAULT_OPERATORS, ast.Mult: bounded_mul, ast.Pow: bounded_pow,
              ast.Add: bounded_add, ast.Mod: bounded_mod, ast.LShift: bounded_lshift}


class _BoundedEval(EvalWithCompoundTypes):
    def _check_disallowed_items(self, item: Any) -> None:
        # simpleeval walks every intermediate result; on a list that repeats a reference to a
        # large list that walk is quadratic. Bound it first (our names hold only JSON data).
        if type(item) in (int, float, str, bool, type(None)):
            return
        if printed_size(item, 2 * MAX_VALUE_SIZE) > 2 * MAX_VALUE_SIZE:
            raise ExpressionTooLarge(f"a value of more than {2 * MAX_VALUE_SIZE:,} items")
        super()._check_disallowed_items(item)

    def _eval_call(self, node: ast.Call) -> Any:
        if isinstance(node.func, ast.Attribute):
            func = self._eval(node.func)
            args = tuple(self._eval(a) for a in node.args)
            kwargs = dict(self._eval(k) for k in node.keywords)
            check_call(func, args, kwargs)
            return func(*args, **kwargs)
        return super()._eval_call(node)


def check_condition(source: str) -> str | None:
    """Why `source` cannot be saved, or None: syntax, `_` names and attributes (Python
    internals), and what its constant parts would allocate (evaluated once, briefly, with no
    variables, under the run-time bounds)."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        return f"invalid expression {source!r}: {exc.msg}"
    for node in ast.walk(tree):
        name = node.attr if isinstance(node, ast.Attribute) else (
            node.id if isinstance(node, ast.Name) and node.id.startswith("__") else None)
        if name is not None and name.startswith("_"):
            return f"expression {source!r}: names starting with '_' are not allowed ({name})"
    try:
        _trial(lambda limit: evaluate(source, {}, time_limit_s=limit))
    except (ExpressionTooLarge, ExpressionRefused) as exc:
        return str(exc)
    except ExpressionError:
        pass  # as for templates: undefined variables, or out of trial time
    return None


@lru_cache(maxsize=4096)
def _parsed(source: str) -> ast.AST:
    return ast.parse(source.strip(), mode="eval").body


def _evaluate_now(source: str, variables: dict[str, Any]) -> Any:
    start_budget()
    evaluator = _BoundedEval(names=dict(variables), functions=_FUNCTIONS, operators=_OPERATORS)
    return evaluator.eval(source, previously_parsed=_parsed(source))


def evaluate(source: str, variables: dict[str, Any], *,
             time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> Any:
    """Evaluate in the calling thread (bounded in size and time). Prefer `evaluate_async` on
    the event loop."""
    try:
        return watchdog.run(lambda: _evaluate_now(source, variables), time_limit_s,
                             "evaluating")
    except ExpressionError as exc:
        raise type(exc)(f"expression {source!r}: {exc}") from None
    except FeatureNotAvailable as exc:
        raise ExpressionRefused(f"expression {source!r}: {exc}") from None
    except InvalidExpression as exc:
        raise ExpressionError(f"expression {source!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - arithmetic or type errors in user expressions
        raise ExpressionError(f"expression {source!r}: {type(exc).__name__}: {exc}") from None


async def evaluate_async(source: str, variables: dict[str, Any], *,
                         time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> Any:
    """`evaluate`, off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(
        _workers, lambda: evaluate(source, variables, time_limit_s=time_limit_s))


__all__ = ["ExpressionError", "ExpressionRefused", "ExpressionTimeout", "ExpressionTooLarge", "check_condition",
           "check_template", "evaluate", "evaluate_async", "render", "render_async"]
