"""Stage plot: figures under plots/figures, the per-class IoU table plots/iou_per_class.csv and
every run's curves in plots/curves/{train,val}.csv (overlaid by dvc plots). Every run's deepest-level
mIoU against its training minutes is one figure (time_to_accuracy.png); prediction grids, worst cases,
confusion matrices and curve figures are drawn for the first seed's runs only."""
import json

import numpy as np

from hseg import layout, plots
from hseg.atomic import atomic_path
from hseg.cache import load_cache
from hseg.cli import run_cli, stage_parser
from hseg.errors import UserError
from hseg.settings.base import load_params
from hseg.settings.classes import class_tree
from hseg.settings.plot import plot_settings
from hseg.settings.study import study_settings
from hseg.tracking import finished_history


def main(args):
    params = load_params(args.params)
    settings = plot_settings(params)
    dpi = settings.dpi
    study = study_settings(params)
    seeds = study.seeds
    runs = [layout.run_name(v, s) for v in study.variants for s in seeds
            if layout.metrics_file(layout.run_name(v, s)).is_file()]
    if not runs:
        raise UserError("no metrics found under metrics/: run the train and evaluate stages first (`dvc repro`)")
    val = load_cache(layout.cache_file("val"))
    tree = class_tree(params, val["leaf_names"])
    out = layout.FIGURES

    scores = {r: json.loads(layout.metrics_file(r).read_text()) for r in runs}
    plots.save(plots.miou_bars(scores, tree), out / "miou_by_level.png", dpi)

    ious = plots.iou_rows(scores, tree)
    with atomic_path(layout.IOU_TABLE) as tmp:
        ious.to_csv(tmp, index=False, float_format="%.4f")
    plots.save(plots.iou_heatmap(ious, "IoU per class, level and variant (val)"), out / "iou_per_class.png", dpi)

    n_grid = min(settings.grid_images, len(val["ids"]))
    n_worst = min(settings.worst_cases, len(val["ids"]))
    grid_idx = np.linspace(0, len(val["ids"]) - 1, n_grid).astype(int)
    images, masks, ids = val["images"].numpy(), val["masks"].numpy(), val["ids"]
    deepest = len(tree.levels) - 1
    histories = {r: finished_history(layout.live_dir(r), r) for r in runs}
    for name, table in zip(("train", "val"), plots.curve_tables(histories, deepest)):
        with atomic_path(layout.CURVES / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
    val_name = layout.validation_split(params)
    plots.save(plots.time_to_accuracy(histories, deepest, val_name), out / "time_to_accuracy.png", dpi)
    for v in [r for r in runs if layout.split_run(r)[1] == seeds[0]]:
        plots.save(plots.training_curves(histories[v].to_dict("list"), v, val_name), out / f"curves_{v}.png", dpi)
        details = np.load(layout.details_file(v))
        pred = details["pred"]
        plots.save(plots.prediction_grid(images[grid_idx], masks[grid_idx], pred[grid_idx], tree,
                                         f"{v}: val predictions", [ids[i] for i in grid_idx]),
                   out / f"predictions_{v}.png", dpi)
        per_image = plots.per_image_level_miou(details["per_image_confusion"], tree, deepest)
        worst = np.argsort(np.nan_to_num(per_image, nan=np.inf))[:n_worst]
        plots.save(plots.prediction_grid(images[worst], masks[worst], pred[worst], tree,
                                         f"{v}: lowest level-{deepest} mIoU val images",
                                         [f"{ids[i]} ({per_image[i]:.2f})" for i in worst]),
                   out / f"worst_{v}.png", dpi)
        plots.save(plots.confusion_figure(details["confusion"], list(tree.leaf_names),
                                          f"{v}: confusion (rows = truth, normalised)"),
                   out / f"confusion_{v}.png", dpi)
    print(f"plots for {len(runs)} run(s) -> {out}, {layout.IOU_TABLE}")


if __name__ == "__main__":
    run_cli(main, stage_parser(__doc__))
