"""Templates (`{{ variable }}`, Jinja2's sandbox) and conditions (`when`, simpleeval): the two
small languages a flow document may contain. Neither can reach Python internals or `eval`.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from typing import Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from simpleeval import EvalWithCompoundTypes, InvalidExpression

_env = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
MAX_RENDERED_CHARS = 50_000

# Pure helpers a condition may call; nothing that touches the outside world.
_FUNCTIONS = {
    "len": len, "str": str, "int": int, "float": float, "bool": bool, "abs": abs,
    "min": min, "max": max, "round": round, "lower": lambda s: str(s).lower(),
    "contains": lambda haystack, needle: str(needle).lower() in str(haystack).lower(),
}


class ExpressionError(Exception):
    """A condition or template failed at run time; the message names the expression."""


@lru_cache(maxsize=4096)
def _template(source: str):
    return _env.from_string(source)


def check_template(source: str) -> str | None:
    try:
        _template(source)
    except TemplateSyntaxError as exc:
        return f"{exc.message} (line {exc.lineno})"
    return None


def render(source: str, variables: dict[str, Any]) -> str:
    if "{" not in source:
        return source
    try:
        text = _template(source).render(variables)
    except Exception as exc:  # noqa: BLE001 - sandbox violations and type errors alike
        raise ExpressionError(f"template {source[:80]!r}: {exc}") from None
    return text[:MAX_RENDERED_CHARS]


def check_condition(source: str) -> str | None:
    try:
        ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        return f"invalid expression {source!r}: {exc.msg}"
    return None


@lru_cache(maxsize=4096)
def _parsed(source: str) -> ast.AST:
    return ast.parse(source.strip(), mode="eval").body


def evaluate(source: str, variables: dict[str, Any]) -> Any:
    evaluator = EvalWithCompoundTypes(names=dict(variables), functions=_FUNCTIONS)
    try:
        return evaluator.eval(source, previously_parsed=_parsed(source))
    except InvalidExpression as exc:
        raise ExpressionError(f"expression {source!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - arithmetic or type errors in user expressions
        raise ExpressionError(f"expression {source!r}: {type(exc).__name__}: {exc}") from None
