"""Stage evaluate@<variant>-<seed>: hierarchical mIoU on val at original resolution -> metrics/runs/<run>.json
(with the test-time augmentation it was scored with, under "tta", for `python -m hseg predict`, the epochs
it trained and the machines it was trained and scored on)."""

import numpy as np

from hseg import layout
from hseg.atomic import atomic_path, write_json
from hseg.cache import load_cache
from hseg.cli import run_cli, stage_parser
from hseg.evaluate import evaluate_weights
from hseg.models import load_weights_meta
from hseg.settings.base import load_params
from hseg.settings.classes import class_tree
from hseg.settings.evaluate import evaluate_settings
from hseg.settings.study import parse_variant
from hseg.versions import machine


def main(args):
    params = load_params(args.params)
    parse_variant(args.variant)
    run = layout.run_name(args.variant, args.seed)
    settings = evaluate_settings(params)
    val_cache = load_cache(layout.cache_file("val"))
    tree = class_tree(params, val_cache["leaf_names"])
    scores, details = evaluate_weights(layout.weights_file(run), val_cache, tree, settings,
                                       progress=not args.no_progress)
    with atomic_path(layout.details_file(run)) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **details)
    # the test-time augmentation these scores were measured with: `python -m hseg predict` applies it by default
    scores["tta"] = {"flip": settings.flip_tta, "sides": list(settings.tta_sides)}
    trained = load_weights_meta(layout.weights_file(run))
    scores["epochs"] = trained["epochs"]   # carried into the summary, so the report needs no training logs
    # bf16 kernels differ between CPU types: record where the run trained and where it was scored
    scores["machine"] = {"train": trained.get("machine"), "evaluate": machine()}
    write_json(layout.metrics_file(run), scores)
    shown = "  ".join(f"mIoU^{k} {scores[f'miou{k}']:.4f}" for k in range(len(tree.levels))
                      if scores[f"miou{k}"] is not None)
    print(f"{run}: {shown}  -> {layout.metrics_file(run)}")


if __name__ == "__main__":
    run_cli(main, stage_parser(__doc__, variant=True, seed=True, progress=True))
