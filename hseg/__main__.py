"""pascal-hseg command line: `python -m hseg predict ...` and `python -m hseg report`."""
import sys

USAGE = """usage: python -m hseg {predict,report} [...]

  predict   run a trained variant on your own images (python -m hseg predict --help)
  report    print the results table from metrics/*.json
"""


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(USAGE)
        return 0 if len(sys.argv) >= 2 else 2
    command, rest = sys.argv[1], sys.argv[2:]
    sys.argv = [f"python -m hseg {command}"] + rest
    if command == "predict":
        from .predict import main as predict_main
        return predict_main(rest)
    if command == "report":
        from .report import main as report_main
        return report_main(rest)
    print(f"unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
