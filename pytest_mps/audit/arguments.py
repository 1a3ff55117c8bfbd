"""Validation of check arguments, which come from Python and from YAML alike.

Each function returns the value in its canonical form or raises `ValueError` naming the
argument; YAML makes quoted numbers and booleans easy to slip in, so both are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real
from typing import Any

Interval = tuple[float, float]


def number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def non_negative(value: Any, name: str) -> float:
    result = number(value, name)
    if result < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return result


def positive(value: Any, name: str) -> float:
    result = number(value, name)
    if result <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return result


def fraction(value: Any, name: str) -> float:
    result = number(value, name)
    if not 0.0 <= result <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return result


def alpha(value: Any) -> float:
    result = number(value, "alpha")
    if not 0.0 < result < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {value!r}")
    return result


def interval(value: Any, name: str) -> Interval:
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}")
    low, high = (number(v, name) for v in value)
    if low > high:
        raise ValueError(f"{name} must have low <= high, got [{low:g}, {high:g}]")
    return low, high


def one_of(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def model_name(value: Any) -> str:
    """The name of a model of a comparison."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"a model is named by a non-empty string, not {value!r}")
    return value


def model_pair(first: Any, second: Any, names: tuple[str, str]) -> tuple[str, ...]:
    """The two models a check compares, named by the arguments ``names``; empty when neither
    is given (the comparison's two models, when it has exactly two)."""
    if first is None and second is None:
        return ()
    if first is None or second is None:
        raise ValueError(f"give both {names[0]} and {names[1]}, or neither")
    return (model_name(first), model_name(second))


def optional(validate: Callable[[Any, str], float], value: Any, name: str) -> float | None:
    """``validate(value, name)``, or None for an argument that was not given."""
    return None if value is None else validate(value, name)
