"""User-facing errors and the common entry-point wrapper for stage scripts."""
from __future__ import annotations

import argparse
import sys
from typing import Callable


class UserError(Exception):
    """A problem the user can fix (bad params, bad data, missing weights).

    Stage scripts print its message as one line and exit with status 2,
    without a traceback unless ``--debug`` is given.
    """


def run_cli(main: Callable[[argparse.Namespace], None], parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    args = parser.parse_args()
    try:
        main(args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
