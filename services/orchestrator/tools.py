"""Built-in tools the LLM stage may call, for providers that support OpenAI tool calling.

A pipeline's llm stage lists the tools it offers (`tools: [current_time, calculate]`); they
are sent only to providers marked `supports_tools: true` — a model that does not know the
`tools` field would ignore it or fail. When the reply asks for tools, the orchestrator runs
them here and sends the results back, up to `ORCH_MAX_TOOL_ROUNDS` times per turn.
A tool never raises into the pipeline: bad arguments become an error text the model reads.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ToolError(Exception):
    """The tool cannot answer these arguments; the message goes back to the model."""


@dataclass(frozen=True)
class Tool:
    """One callable tool: its OpenAI function schema and the function."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any]], str]

    def schema(self) -> dict[str, Any]:
        """The OpenAI `tools` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def _current_time(args: dict[str, Any]) -> str:
    name = args.get("timezone") or "UTC"
    if not isinstance(name, str):
        raise ToolError("timezone must be a string such as 'Europe/Paris'")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"unknown timezone {name!r}; use an IANA name such as 'Europe/Paris'"
        ) from None
    now = dt.datetime.now(zone)
    return f"{now.strftime('%A %d %B %Y, %H:%M')} ({name}, {now.isoformat(timespec='seconds')})"


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
MAX_EXPRESSION_CHARS = 200
# 10**1000 is instant, but 9**9**9 would run for minutes: bound every power.
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e300


def _evaluate(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        number: float | int = node.value  # type: ignore[assignment]
        return number
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))  # type: ignore[no-any-return]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ToolError(f"exponent larger than {MAX_EXPONENT}")
        try:
            value = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("the result is too large") from None
        if isinstance(value, complex):
            raise ToolError("the result is not a real number")
        if abs(value) > MAX_MAGNITUDE:
            raise ToolError("the result is too large")
        return value  # type: ignore[no-any-return]
    raise ToolError("only numbers, + - * / // % ** and parentheses are allowed")


def _calculate(args: dict[str, Any]) -> str:
    expression = args.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        raise ToolError("expression must be a non-empty string such as '(3 + 4) * 2'")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise ToolError(f"cannot parse {expression!r}") from None
    value = _evaluate(tree)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ToolError("the result is not a finite number")
        if value.is_integer():
            return str(int(value))
        return f"{value:.10g}"
    return str(value)


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "current_time",
            "The current date and time, in a time zone (default UTC).",
            {
                "type": "object",
                "properties": {
                    "timezone": {
                        "type": "string",
                        "description": "IANA time zone, e.g. 'Europe/Paris'",
                    }
                },
                "required": [],
            },
            _current_time,
        ),
        Tool(
            "calculate",
            "Evaluate an arithmetic expression exactly (numbers, + - * / // % ** and brackets).",
            {
                "type": "object",
                "properties": {
                    "expression": {"type": "string", "description": "e.g. '(17 + 25) * 3'"}
                },
                "required": ["expression"],
            },
            _calculate,
        ),
    )
}


def schemas(names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The OpenAI `tools` list for these tool names (validated at config load)."""
    return [TOOLS[name].schema() for name in names]


def run_tool(name: str, arguments: str | dict[str, Any] | None, offered: tuple[str, ...]) -> str:
    """Run one tool call from the model; errors come back as text the model can read."""
    if name not in offered:
        return f"error: no tool named {name!r} (available: {', '.join(offered)})"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return "error: the arguments are not valid JSON"
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return "error: the arguments must be a JSON object"
    try:
        return TOOLS[name].run(arguments)
    except ToolError as exc:
        return f"error: {exc}"
