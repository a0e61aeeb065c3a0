"""Stage prepare: validate the dataset and cache resized uint8 tensors for train and val."""
import time

from hseg import layout
from hseg.atomic import write_json
from hseg.cache import save_cache
from hseg.dataset import check_splits, read_classes, read_ids
from hseg.cli import run_cli, stage_parser
from hseg.prepare import build_cache
from hseg.settings.base import load_params
from hseg.settings.classes import class_tree
from hseg.settings.data import data_paths, prepare_settings
from hseg.versions import environment


def main(args):
    params = load_params(args.params)
    settings = prepare_settings(params)
    size, workers = settings.size, settings.workers
    paths = data_paths(params)
    leaf_names = read_classes(paths.classes_file)
    class_tree(params, leaf_names)  # fail now, not after decoding, if the tree does not fit classes.txt
    train_ids, val_ids = read_ids(paths.train_ids), read_ids(paths.val_ids)
    check_splits(train_ids, val_ids, paths.train_ids, paths.val_ids)

    start = time.perf_counter()
    # decode and validate both splits before writing anything
    caches = {
        split: build_cache(paths.root, ids, len(leaf_names), size, keep_full_masks=(split == "val"),
                           workers=workers, desc=split)
        for split, ids in (("train", train_ids), ("val", val_ids))
    }
    for split, cache in caches.items():
        cache["leaf_names"] = leaf_names
        save_cache(cache, layout.cache_file(split))
    write_json(layout.PREPARED / "summary.json", {
        "size": size, "train": len(train_ids), "val": len(val_ids), "classes": leaf_names,
        "train_pixels": dict(zip(leaf_names, caches["train"]["pixel_counts"].tolist())), "versions": environment()})
    print(f"prepared {len(train_ids)} train + {len(val_ids)} val images at {size}px "
          f"in {time.perf_counter() - start:.1f}s -> {layout.PREPARED}")


if __name__ == "__main__":
    run_cli(main, stage_parser(__doc__))
