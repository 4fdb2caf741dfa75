"""Sandboxed evaluation of the expressions and scripts written in diagrams.

Conditions, timer expressions, assignment expressions, DMN cells and script tasks run
here, never through Python's ``eval``/``exec``. Expressions are evaluated by simpleeval
(no imports, no ``_``-prefixed attributes, only the helpers listed below, limits on
powers, string lengths and comprehensions); scripts are a small statement language
(assignments, ``if``, bounded ``for``) interpreted node by node on top of it.
"""

from __future__ import annotations

import ast
import functools
import logging
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import simpleeval
from simpleeval import EvalWithCompoundTypes

log = logging.getLogger(__name__)

MAX_SCRIPT_STEPS = 50_000
MAX_LOOP_ITERATIONS = 10_000
MAX_SOURCE_LENGTH = 20_000


class SandboxError(Exception):
    """An expression or script was refused or failed; the message is for analysts."""


def _capped_range(*args: int) -> range:
    values = range(*args)
    if len(values) > MAX_LOOP_ITERATIONS:
        raise SandboxError(f"range() limité à {MAX_LOOP_ITERATIONS} éléments")
    return values


def _date(*args: Any) -> date:
    """``date(2026, 12, 18)`` as in Python, or ``date("2026-12-18")`` as in FEEL."""
    if len(args) == 1 and isinstance(args[0], str):
        return date.fromisoformat(args[0])
    return date(*args)


def _log_print(*args: Any) -> None:
    log.info("script: %s", " ".join(str(a) for a in args))


HELPERS: dict[str, Callable[..., Any]] = {
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "round": round,
    "abs": abs,
    "min": min,
    "max": max,
    "sum": sum,
    "sorted": sorted,
    "list": list,
    "dict": dict,
    "set": set,
    "tuple": tuple,
    "any": any,
    "all": all,
    "range": _capped_range,
    "print": _log_print,
    "Decimal": Decimal,
    "date": _date,
    "timedelta": timedelta,
    "today": date.today,
    "now": lambda: datetime.now().astimezone(),
}
CONSTANTS: dict[str, Any] = {"True": True, "False": False, "None": None}

_ALLOWED_ATTRS = dict(simpleeval.BASIC_ALLOWED_ATTRS)
_ALLOWED_ATTRS[date] = {"year", "month", "day", "isoformat", "weekday", "isoweekday", "strftime"}
_ALLOWED_ATTRS[datetime] = _ALLOWED_ATTRS[date] | {"hour", "minute", "second", "date", "astimezone"}
_ALLOWED_ATTRS[timedelta] = {"days", "seconds", "total_seconds"}
_ALLOWED_ATTRS[Decimal] = {"quantize"}

# Statements a script may contain; everything else is refused before it runs.
_SCRIPT_STATEMENTS = (
    ast.Assign,
    ast.AugAssign,
    ast.Expr,
    ast.If,
    ast.For,
    ast.Pass,
    ast.Break,
    ast.Continue,
)
_FORBIDDEN_NODES = (
    ast.Import,
    ast.ImportFrom,
    ast.While,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Lambda,
    ast.Global,
    ast.Nonlocal,
    ast.With,
    ast.Try,
    ast.Raise,
    ast.Delete,
    ast.Await,
    ast.Yield,
    ast.YieldFrom,
    ast.NamedExpr,
    ast.Starred,
)
_FORBIDDEN_NAMES = {
    "open",
    "eval",
    "exec",
    "compile",
    "__import__",
    "globals",
    "locals",
    "vars",
    "getattr",
    "setattr",
    "delattr",
    "type",
    "breakpoint",
    "input",
    "help",
    "memoryview",
    "object",
    "super",
    "classmethod",
    "staticmethod",
    "property",
    "exit",
    "quit",
}


def register_helper(name: str, func: Callable[..., Any]) -> None:
    """Make a function callable from every expression and script (e.g. working days)."""
    HELPERS[name] = func
    # Trees were checked against the helpers known then: check again with the new set.
    _checked_expression.cache_clear()
    _checked_script.cache_clear()


def _refuse(node: ast.AST, message: str) -> SandboxError:
    line = getattr(node, "lineno", None)
    return SandboxError(f"{message} (ligne {line})" if line else message)


def _check_tree(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, _FORBIDDEN_NODES):
            kind = {
                ast.Import: "import",
                ast.ImportFrom: "import",
                ast.While: "boucle while",
                ast.Lambda: "lambda",
            }.get(type(node), type(node).__name__)
            raise _refuse(node, f"Construction interdite dans le bac à sable : {kind}")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise _refuse(node, f"Nom interdit : {node.id}")
        if isinstance(node, ast.Attribute) and (
            node.attr.startswith("_") or node.attr in simpleeval.DISALLOW_METHODS
        ):
            raise _refuse(node, f"Attribut interdit : {node.attr}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and (node.func.id not in HELPERS or node.func.id in _FORBIDDEN_NAMES)
        ):
            raise _refuse(node, f"Fonction inconnue : {node.func.id}()")


def check_expression(expression: str) -> ast.Expression:
    """Parse an expression and refuse what the sandbox does not allow.

    Accepted trees are kept (the same conditions run at every step of every instance);
    they are only read, never changed, by the evaluator.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise SandboxError("Expression vide")
    if len(expression) > MAX_SOURCE_LENGTH:
        raise SandboxError("Expression trop longue")
    return _checked_expression(expression)


@functools.lru_cache(maxsize=2048)
def _checked_expression(expression: str) -> ast.Expression:
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise SandboxError(f"Expression invalide : {exc.msg}") from exc
    _check_tree(tree)
    return tree


def check_script(script: str) -> ast.Module:
    """Parse a script and refuse statements outside the allowed subset (accepted trees kept)."""
    if len(script or "") > MAX_SOURCE_LENGTH:
        raise SandboxError("Script trop long")
    return _checked_script(script or "")


@functools.lru_cache(maxsize=512)
def _checked_script(script: str) -> ast.Module:
    try:
        tree = ast.parse(script, mode="exec")
    except SyntaxError as exc:
        raise SandboxError(f"Script invalide : {exc.msg} (ligne {exc.lineno})") from exc
    _check_tree(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not isinstance(node, _SCRIPT_STATEMENTS):
            raise _refuse(node, f"Instruction non autorisée : {type(node).__name__}")
    return tree


class _Evaluator(EvalWithCompoundTypes):
    def __init__(self, names: dict):
        super().__init__(functions=HELPERS, names=names, allowed_attrs=_ALLOWED_ATTRS)

    def _eval_attribute(self, node):
        if node.attr.startswith("_") or node.attr in simpleeval.DISALLOW_METHODS:
            raise SandboxError(f"Attribut interdit : {node.attr}")
        base = self._eval(node.value)
        if isinstance(base, dict) and node.attr in base:  # ``case.amount`` reads the key
            return base[node.attr]
        allowed = self.allowed_attrs.get(type(base))
        if allowed is None or node.attr not in allowed:
            raise SandboxError(f"Attribut non autorisé : .{node.attr}")
        return getattr(base, node.attr)


class _Names(dict):
    """Variables visible to an expression: task data, then extras, then constants."""

    def __init__(self, data: dict, extra: dict | None):
        super().__init__(CONSTANTS)
        self.update(extra or {})
        self.update(data)


def evaluate(expression: str, data: dict, extra: dict | None = None) -> Any:
    """Evaluate an expression against task data; raise SandboxError on any refusal."""
    tree = check_expression(expression)
    evaluator = _Evaluator(_Names(data, extra))
    evaluator.expr = expression
    try:
        return evaluator._eval(tree.body)
    except SandboxError:
        raise
    except simpleeval.NameNotDefined as exc:
        raise SandboxError(f"Variable inconnue : {exc.name}") from exc
    except simpleeval.InvalidExpression as exc:
        raise SandboxError(f"Expression refusée : {exc}") from exc
    except Exception as exc:
        raise SandboxError(f"Erreur d'évaluation : {type(exc).__name__}: {exc}") from exc


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _ScriptRunner:
    def __init__(self, data: dict, extra: dict | None):
        self.data = data
        self.extra = extra or {}
        self.steps = 0

    def names(self) -> _Names:
        return _Names(self.data, self.extra)

    def value(self, node: ast.expr) -> Any:
        evaluator = _Evaluator(self.names())
        evaluator.expr = ast.unparse(node)
        return evaluator._eval(node)

    def assign(self, target: ast.expr, value: Any) -> None:
        if isinstance(target, ast.Name):
            if target.id in HELPERS or target.id in CONSTANTS:
                raise _refuse(target, f"« {target.id} » est réservé")
            self.data[target.id] = value
        elif isinstance(target, ast.Subscript):
            container = self.value(target.value)
            container[self.value(target.slice)] = value
        elif isinstance(target, ast.Tuple | ast.List):
            values = list(value)
            if len(values) != len(target.elts):
                raise _refuse(target, "Nombre de valeurs incorrect")
            for element, item in zip(target.elts, values, strict=True):
                self.assign(element, item)
        else:
            raise _refuse(target, "Affectation non autorisée")

    def run(self, statements: list[ast.stmt]) -> None:
        for stmt in statements:
            self.steps += 1
            if self.steps > MAX_SCRIPT_STEPS:
                raise SandboxError("Script trop long à exécuter (limite d'étapes atteinte)")
            if isinstance(stmt, ast.Assign):
                value = self.value(stmt.value)
                for target in stmt.targets:
                    self.assign(target, value)
            elif isinstance(stmt, ast.AugAssign):
                current = self.value(stmt.target)
                operator = _Evaluator({}).operators[type(stmt.op)]
                self.assign(stmt.target, operator(current, self.value(stmt.value)))
            elif isinstance(stmt, ast.Expr):
                self.value(stmt.value)
            elif isinstance(stmt, ast.If):
                self.run(stmt.body if self.value(stmt.test) else stmt.orelse)
            elif isinstance(stmt, ast.For):
                self.loop(stmt)
            elif isinstance(stmt, ast.Break):
                raise _Break
            elif isinstance(stmt, ast.Continue):
                raise _Continue

    def loop(self, stmt: ast.For) -> None:
        for count, item in enumerate(self.value(stmt.iter)):
            if count >= MAX_LOOP_ITERATIONS:
                raise _refuse(stmt, "Boucle trop longue")
            self.assign(stmt.target, item)
            try:
                self.run(stmt.body)
            except _Break:
                return
            except _Continue:
                continue
        self.run(stmt.orelse)


def execute(script: str, data: dict, extra: dict | None = None) -> None:
    """Run a script task's code; assignments land in ``data``."""
    tree = check_script(script)
    runner = _ScriptRunner(data, extra)
    try:
        runner.run(tree.body)
    except SandboxError:
        raise
    except (_Break, _Continue) as exc:
        raise SandboxError("break/continue hors d'une boucle") from exc
    except simpleeval.NameNotDefined as exc:
        raise SandboxError(f"Variable inconnue : {exc.name}") from exc
    except simpleeval.InvalidExpression as exc:
        raise SandboxError(f"Instruction refusée : {exc}") from exc
    except Exception as exc:
        raise SandboxError(f"Erreur d'exécution : {type(exc).__name__}: {exc}") from exc


# --- Camunda (JUEL) expressions --------------------------------------------------------

_JUEL_WRAPPED = re.compile(r"^\s*[$#]\{(?P<body>.*)\}\s*$", re.S)
_JAVA_IDIOMS = re.compile(
    r"\bexecution\s*\.|\btask\s*\.|\.equals\s*\(|\.get[A-Z]\w*\s*\(|\bdateTime\s*\(|"
    r"\bnew\s+[A-Z]|\binstanceof\b|\?\s*:|\bS\s*\(|\bJSON\s*\("
)
_JUEL_WORDS = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "gt": ">",
    "le": "<=",
    "ge": ">=",
    "and": "and",
    "or": "or",
    "not": "not",
    "null": "None",
    "true": "True",
    "false": "False",
    "div": "/",
    "mod": "%",
}


def is_camunda_expression(text: str) -> bool:
    """True for ``${…}``/``#{…}`` expressions as Camunda Modeler users write them."""
    return bool(_JUEL_WRAPPED.match(text or ""))


def translate_camunda(text: str) -> str:
    """Translate a simple ``${…}`` expression into the sandbox's Python dialect.

    Supported: variables and ``a.b`` paths, literals, comparisons, ``&&``/``||``/``!``,
    the JUEL words (``eq``, ``and``, ``empty``…) and arithmetic. Java method calls and
    Camunda's built-in objects are refused with a message.
    """
    match = _JUEL_WRAPPED.match(text or "")
    if not match:
        raise SandboxError("Expression Camunda attendue sous la forme ${…}")
    body = match.group("body").strip()
    if not body:
        raise SandboxError("Expression ${} vide")
    if _JAVA_IDIOMS.search(body):
        raise SandboxError(
            f"Expression Camunda non prise en charge (appel Java ou objet du moteur) : {text}"
        )
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch in "'\"":
            end = i + 1
            while end < len(body) and body[end] != ch:
                end += 2 if body[end] == "\\" else 1
            out.append(body[i : end + 1])
            i = end + 1
        elif body.startswith("&&", i):
            out.append(" and ")
            i += 2
        elif body.startswith("||", i):
            out.append(" or ")
            i += 2
        elif ch == "!" and not body.startswith("!=", i):
            out.append(" not ")
            i += 1
        elif ch.isalpha() or ch == "_":
            end = i
            while end < len(body) and (body[end].isalnum() or body[end] == "_"):
                end += 1
            word = body[i:end]
            if word == "empty":
                out.append(" not ")
            else:
                out.append(_JUEL_WORDS.get(word, word))
            i = end
        else:
            out.append(ch)
            i += 1
    python = re.sub(r"\s+", " ", "".join(out)).strip()
    try:
        check_expression(python)
    except SandboxError as exc:
        raise SandboxError(f"Expression Camunda non prise en charge : {text} ({exc})") from exc
    return python


def normalise_expression(text: str) -> str:
    """Return the Python-dialect form of a diagram expression (``${…}`` translated)."""
    text = (text or "").strip()
    if is_camunda_expression(text):
        return translate_camunda(text)
    check_expression(text)
    return text
