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

MAX_SEEDS = 50


def seed_list(text: str) -> list[int]:
    """Seeds as "0,1,2", "0-4" or a mix ("0-2,7"): distinct, each ≥ 0, in the order given.

    A cap keeps a typo ("0-1000") from starting a thousand trainings."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a list of seeds (like 0,1,2 or 0-4)") from None
        if first < 0 or last < first:
            raise argparse.ArgumentTypeError(f"{part!r}: seeds are whole numbers ≥ 0, ranges low-high")
        if len(seeds) + last - first + 1 > MAX_SEEDS:  # before the range is built: "0-999999999" is a typo, not a plan
            raise argparse.ArgumentTypeError(f"at most {MAX_SEEDS} seeds (got more in {text!r})")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} names a seed twice")
    return seeds


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


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """The ranking filters, shared by `rank` and `pool` (`recommender.model_filters`)."""
    parser.add_argument("--max-params", metavar="SIZE", help="only models of at most this many parameters: 350M, 7B, 1.5e9")
    parser.add_argument("--licence", "--license", action="append", metavar="ID",
                        help="only models under these licences (apache-2.0, mit, …); repeat or comma-separate")
    parser.add_argument("--open-weights", action="store_true", help="leave out models recorded as API only")
    parser.add_argument("--require-known", action="store_true",
                        help="with a filter: also leave out models whose size / licence / openness is not recorded")


def filter_from_arguments(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The `ModelFilter` the options ask for, or None when they ask for none."""
    from recommender.errors import UsageError
    from recommender.model_filters import filter_from

    constraint = filter_from(args.max_params, args.licence or (), args.open_weights, args.require_known)
    if args.require_known and constraint is None:
        raise UsageError("--require-known goes with a filter: --max-params, --licence or --open-weights")
    return constraint


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """How a free-text reply is decoded (`routing.sampling`): greedy unless a temperature is given."""
    group = parser.add_argument_group("decoding (free-text replies; greedy unless --temperature is above 0)")
    group.add_argument("--temperature", type=non_negative_float, default=0.0, metavar="T",
                       help="sample with this temperature, 0 to 2 (default 0: greedy, the same reply every time)")
    group.add_argument("--top-p", type=float, default=1.0, metavar="P",
                       help="sample from the fewest likeliest tokens whose probability reaches P (default 1: all)")
    group.add_argument("--top-k", type=non_negative_int, default=0, metavar="K",
                       help="sample from the K likeliest tokens only (default 0: no limit)")
    group.add_argument("--frequency-penalty", type=float, default=0.0, metavar="F",
                       help="-2 to 2: lower a token's score by F per time the reply has used it (less repetition)")
    group.add_argument("--presence-penalty", type=float, default=0.0, metavar="F",
                       help="-2 to 2: lower a token's score by F once the reply has used it (new topics)")
    group.add_argument("--seed", type=int, default=None, metavar="N",
                       help="make a sampled reply repeatable: the same seed, the same reply")


def sampling_from_arguments(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The decoding the options ask for; a value out of range is the usage error Sampling names."""
    from recommender.errors import UsageError
    from routing.sampling import Sampling

    try:
        return Sampling(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                        frequency_penalty=args.frequency_penalty, presence_penalty=args.presence_penalty, seed=args.seed)
    except UsageError as exc:  # named as the API names it ("top_p must be …"): say the option
        name, rest = str(exc).split(" ", 1)
        raise UsageError(f"--{name.replace('_', '-')} {rest}") from None
