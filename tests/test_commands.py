"""Every `python -m hseg` command has a working --help (argparse formats help strings with %, so a
stray '%' breaks only --help, which nothing else runs)."""
import importlib

import pytest

from hseg.__main__ import COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_formats(command):
    text = importlib.import_module(f"hseg.{command}").parser().format_help()
    assert text.startswith("usage:") and len(text.splitlines()) > 3
