"""Stage evaluate@<variant>: hierarchical mIoU on val at original resolution -> metrics/<variant>.json."""

import numpy as np

from hseg import layout
from hseg.atomic import atomic_path, write_json
from hseg.cache import load_cache
from hseg.cli import run_cli, stage_parser
from hseg.evaluate import evaluate_weights
from hseg.settings.base import load_params
from hseg.settings.classes import class_tree
from hseg.settings.evaluate import evaluate_settings
from hseg.settings.study import parse_variant


def main(args):
    params = load_params(args.params)
    parse_variant(args.variant)
    settings = evaluate_settings(params)
    val_cache = load_cache(layout.cache_file("val"))
    tree = class_tree(params, val_cache["leaf_names"])
    scores, details = evaluate_weights(layout.weights_file(args.variant), val_cache, tree, settings,
                                       progress=not args.no_progress)
    with atomic_path(layout.details_file(args.variant)) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **details)
    write_json(layout.metrics_file(args.variant), scores)
    shown = "  ".join(f"mIoU^{k} {scores[f'miou{k}']:.4f}" for k in range(len(tree.levels))
                      if scores[f"miou{k}"] is not None)
    print(f"{args.variant}: {shown}  -> {layout.metrics_file(args.variant)}")


if __name__ == "__main__":
    run_cli(main, stage_parser(__doc__, variant=True, progress=True))
