"""pascal-hseg command line: `python -m hseg {exp,plan,predict,report,runs} ...`."""
import importlib
import sys

from .cli import run_cli

COMMANDS = {"exp": "run a named profile (profiles/*.yaml) as a DVC experiment (python -m hseg exp --help)",
            "plan": "size a profile's epochs to this machine and a time budget (python -m hseg plan --help)",
            "predict": "run a trained variant on your own images (python -m hseg predict --help)",
            "report": "print the study's results: mean +- sd over seeds, resolved differences",
            "runs": "list the study's runs by index; a cluster job's DVC stages (python -m hseg runs --help)"}
USAGE = "usage: python -m hseg {exp,plan,predict,report,runs} [...]\n\n" + "\n".join(
    f"  {name:9s} {what}" for name, what in COMMANDS.items()) + "\n"


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(USAGE)
        return 0 if len(sys.argv) >= 2 else 2
    command = sys.argv[1]
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n{USAGE}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"hseg.{command}")
    sys.argv = [f"python -m hseg {command}"] + sys.argv[2:]
    run_cli(module.run, module.parser())
    return 0


if __name__ == "__main__":
    sys.exit(main())
