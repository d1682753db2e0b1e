"""argparse value types for numbers that have a floor.

argparse's own `type=int` lets `--seed -1` through to numpy, which answers with a traceback deep
inside a split; these turn such a value into argparse's one-line usage error (exit 2) instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _at_least(floor: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < floor:
            raise argparse.ArgumentTypeError(f"must be at least {floor} (got {value})")
        return value

    parse.__name__ = f"integer ≥ {floor}"
    return parse


non_negative_int = _at_least(0)
positive_int = _at_least(1)


def fraction(text: str) -> float:
    """A number in [0, 1): a sparsity, a share of something."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1) (got {value:g})")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value:g})")
    return value
