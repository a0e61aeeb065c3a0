"""Stage prepare: validate the dataset, hold out the dev split, and cache resized uint8 tensors
for train (minus dev), dev and val."""
import time

from hseg import layout
from hseg.atomic import atomic_path, write_json
from hseg.cache import save_cache
from hseg.cli import run_cli, stage_parser
from hseg.dataset import check_splits, read_classes, read_ids, split_dev
from hseg.errors import UserError
from hseg.prepare import build_cache
from hseg.settings.base import load_params
from hseg.settings.classes import class_tree
from hseg.settings.data import data_paths, data_settings, prepare_settings
from hseg.versions import environment


def main(args):
    params = load_params(args.params)
    settings = prepare_settings(params)
    size, workers = settings.size, settings.workers
    paths = data_paths(params)
    fraction = data_settings(params).dev_fraction
    leaf_names = read_classes(paths.classes_file)
    class_tree(params, leaf_names)  # fail now, not after decoding, if the tree does not fit classes.txt
    train_ids, val_ids = read_ids(paths.train_ids), read_ids(paths.val_ids)
    check_splits(train_ids, val_ids, paths.train_ids, paths.val_ids)
    fit_ids, dev_ids = split_dev(train_ids, fraction)
    if fraction and not dev_ids:
        raise UserError(f"data.dev_fraction = {fraction}: holds out none of the {len(train_ids)} train ids; "
                        f"raise it, or set it to 0 to validate on val as the original study did")
    splits = {"train": fit_ids, "val": val_ids, **({"dev": dev_ids} if dev_ids else {})}

    start = time.perf_counter()
    # decode and validate every split before writing anything; dev and val keep their
    # original-resolution masks, since both are scored at full resolution
    caches = {split: build_cache(paths.root, ids, len(leaf_names), size, keep_full_masks=(split != "train"),
                                 workers=workers, desc=split)
              for split, ids in splits.items()}
    layout.cache_file("dev").unlink(missing_ok=True)  # a previous dev split must not outlive dev_fraction: 0
    for split, cache in caches.items():
        cache["leaf_names"] = leaf_names
        save_cache(cache, layout.cache_file(split))
    with atomic_path(layout.DEV_IDS) as tmp:
        tmp.write_text("".join(f"{i}\n" for i in dev_ids))
    write_json(layout.PREPARED / "summary.json", {
        "size": size, "dev_fraction": fraction, **{split: len(ids) for split, ids in splits.items()},
        "classes": leaf_names, "train_pixels": dict(zip(leaf_names, caches["train"]["pixel_counts"].tolist())),
        "versions": environment()})
    print(f"prepared {len(fit_ids)} train + {len(dev_ids)} dev (held out of {paths.train_ids.name}) + "
          f"{len(val_ids)} val images at {size}px in {time.perf_counter() - start:.1f}s -> {layout.PREPARED}")


if __name__ == "__main__":
    run_cli(main, stage_parser(__doc__))
