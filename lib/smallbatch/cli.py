"""The ``smallbatch`` command line.

    smallbatch train --data fashion-mnist --model resnet8 --batch-size 32 --base-lr 2^-8 --json
    smallbatch book --scale smoke

Every TrainConfig field is an option of ``train`` (``--batch-size``, ``--base-lr`` ...);
learning rates may be written as powers of two (``2^-8`` or ``2**-8``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import typing

__all__ = ["main", "parse_number"]

_POWER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:\^|\*\*)\s*(-?\d+(?:\.\d+)?)\s*$")


def parse_number(text: str) -> float:
    """A float, or a power written as ``2^-8`` / ``2**-8``."""
    match = _POWER.match(text)
    if match:
        return float(match.group(1)) ** float(match.group(2))
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number (write e.g. 0.004, 2^-8 or 2**-8)") from None


def _optional(parse):
    def convert(text: str):
        return None if text.lower() in ("none", "") else parse(text)
    return convert


def _boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (use true or false)")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    from .train import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        hint = hints[field.name]
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), hint) if args else hint
        flag = "--" + field.name.replace("_", "-")
        help_text = f"(default: {field.default})"
        if base is bool:
            parser.add_argument(flag, type=_boolean, default=field.default, metavar="BOOL",
                                help=help_text)
        elif typing.get_origin(base) is tuple or base is tuple:
            parser.add_argument(flag, type=parse_number, nargs="*", default=field.default,
                                help=help_text)
        else:
            parse = {int: int, float: parse_number, str: str}[base]
            parser.add_argument(flag, type=_optional(parse) if optional else parse,
                                default=field.default, help=help_text)


def _train(args: argparse.Namespace) -> int:
    from .data import DataError
    from .results import save_result
    from .train import ConfigError, TrainConfig, train

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    values["lr_milestones"] = tuple(values["lr_milestones"])
    try:
        config = TrainConfig(**values)
        result = train(config, data_root=args.data_root, download=args.download,
                       device=args.device, progress=not args.quiet and not args.json)
    except (ConfigError, DataError) as error:
        print(f"smallbatch train: error: {error}", file=sys.stderr)
        return 2
    if args.results:
        save_result(result, args.results)
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"{result.data_label}, {config.model}, m={config.batch_size}, "
              f"eta_tilde={config.base_lr:g} (eta={config.peak_lr:g}): {result.status}")
        print(result.history().drop(columns="config_hash").to_string(index=False))
        if result.test_accuracy is not None:
            print(f"median test accuracy of the last 5 epochs: {result.test_accuracy:.4f}")
        else:
            print(f"diverged in epoch {result.diverged_epoch} (step {result.diverged_step})")
        print(f"{result.examples_per_second:,.0f} examples/s on {result.provenance['device']}")
    return 0


def _book(args: argparse.Namespace) -> int:
    from .book import main as book_main

    return book_main(args.book_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smallbatch",
        description="Batch size and learning rate in SGD (Masters and Luschi, 2018).")
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="train one model and print its metrics")
    _add_config_options(train_parser)
    train_parser.add_argument("--data-root", default=None,
                              help="data folder (default: $SMALLBATCH_DATA or "
                                   "~/.cache/smallbatch/data)")
    train_parser.add_argument("--download", action="store_true",
                              help="let torchvision download a missing data set")
    train_parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    train_parser.add_argument("--results", default=None, metavar="DIR",
                              help="also store the result as DIR/<config hash>.json")
    train_parser.add_argument("--json", action="store_true", help="print the result as JSON")
    train_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    train_parser.set_defaults(handler=_train)

    book_parser = commands.add_parser("book", help="execute the notebooks and build the book",
                                      add_help=False)
    book_parser.add_argument("book_args", nargs=argparse.REMAINDER)
    book_parser.set_defaults(handler=_book)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
