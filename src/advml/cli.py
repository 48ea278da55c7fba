"""The ``advml`` command: a thin layer over the Python API.

advml audit                       # audit a reference CNN on mnist-5k, write a report
advml audit --quick               # the one-minute version on digits
advml attack --attack pgd --eps 0.3 --out adv.npz
advml train --dataset digits --out digits-mlp.pt
advml datasets
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from advml import __version__
from advml.commands import Handler, command_modules
from advml.errors import AdvmlError

__all__ = ["main"]


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    p = argparse.ArgumentParser(
        prog="advml",
        description="How secure is this model? Attack it, defend it, measure both, report.",
        epilog="Run 'advml COMMAND --help' for each command's options.",
    )
    p.add_argument("--version", action="version", version=f"advml {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    handlers: dict[str, Handler] = {}
    for module in command_modules():
        added = module.add_commands(sub)
        clash = set(added) & set(handlers)
        if clash:
            raise RuntimeError(f"{module.__name__} redefines commands {sorted(clash)}")
        handlers.update(added)
    return p, handlers


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``advml`` console script; returns the exit code."""
    parser, handlers = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if getattr(args, "quiet", False):
        os.environ["ADVML_QUIET"] = "1"
    try:
        return handlers[args.command](args)
    except (AdvmlError, ValueError, TypeError, FileNotFoundError) as err:
        print(f"advml {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished steps are kept and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
