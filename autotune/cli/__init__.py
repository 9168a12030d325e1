"""The `autotune` command line: one module per group of commands, `display` for what the user sees."""
from __future__ import annotations

import argparse
import sys

from autotune.cli import devices, log, model, operator
from autotune.cli.common import Exit
from autotune.cli.display import quiet_tvm

VERBOSE_HELP = "show TVM's own log lines and library warnings as they come (hidden otherwise)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autotune", description="Auto-tune tensor programs for TVM 0.27.",
        epilog="TVM's own log lines (C++ warnings written straight to stderr) and other packages' Python "
               "warnings are hidden; add --verbose to any command to see them.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (operator, model, log, devices):
        group.add_commands(commands)
    for command in commands.choices.values():
        command.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with quiet_tvm(args.verbose):
            return args.run(args)
    except Exit as error:
        print(error, file=sys.stderr)
        return error.code
    except BrokenPipeError:  # `autotune log summary ... | head`
        sys.stderr.close()
        return 0


__all__ = ["build_parser", "main"]
