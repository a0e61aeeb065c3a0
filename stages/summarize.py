"""Stage summarize: mean +- sd over the study's seeds for each variant and level, the epochs each run
trained, and paired differences between variants with 95 % intervals -> metrics/summary.json (all that
`python -m hseg report` reads)."""
import json

from hseg import layout
from hseg.atomic import write_json
from hseg.cli import run_cli, stage_parser
from hseg.errors import UserError
from hseg.settings.base import load_params
from hseg.settings.study import study_settings
from hseg.summary import summarize


def main(args):
    params = load_params(args.params)
    study = study_settings(params)
    variants, seeds = study.variants, study.seeds
    missing = [layout.metrics_file(layout.run_name(v, s)) for v in variants for s in seeds
               if not layout.metrics_file(layout.run_name(v, s)).is_file()]
    if missing:
        raise UserError(f"{len(missing)} run(s) have no metrics yet, e.g. {missing[0]}: run `dvc repro` "
                        f"(the train and evaluate stages) first")
    scores = {v: {s: json.loads(layout.metrics_file(layout.run_name(v, s)).read_text()) for s in seeds}
              for v in variants}
    write_json(layout.SUMMARY, summarize(scores, seeds))
    print(f"summary of {len(variants)} variant(s) x {len(seeds)} seed(s) -> {layout.SUMMARY}")


if __name__ == "__main__":
    run_cli(main, stage_parser(__doc__))
