"""The command-line plumbing every entry point shares: stage arguments, one error path."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from .errors import UserError


def stage_parser(doc: str, *, variant: bool = False, seed: bool = False,
                 progress: bool = False) -> argparse.ArgumentParser:
    """The arguments every stage script shares."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    parser = argparse.ArgumentParser(prog=f"python -m {spec.name}" if spec else None, description=doc)
    if variant:
        parser.add_argument("variant", help="<arch>-<encoder>-<init>, e.g. unet-resnet34-scratch")
    if seed:
        parser.add_argument("seed", type=int, help="the seed of this run, one of study.seeds (e.g. 42)")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def run_cli(main: Callable[[argparse.Namespace], int | None], parser: argparse.ArgumentParser) -> None:
    """Parse the arguments and run ``main``; a UserError becomes one line and exit status 2,
    a non-zero return value the exit status."""
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    args = parser.parse_args()
    try:
        code = main(args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (`... | head`): not an error of ours
        sys.stderr.close()
        sys.exit(141)
    if code:
        sys.exit(code)
