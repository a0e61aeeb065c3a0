"""Stage train@<variant>-<seed>: train one arch-encoder-init variant with one seed on the prepared
train cache, validating on dev (or on val when data.dev_fraction is 0)."""
import os
import sys

from hseg import layout
from hseg.cache import load_cache
from hseg.cli import run_cli, stage_parser
from hseg.distributed import check_processes
from hseg.settings.base import load_params
from hseg.settings.classes import class_tree
from hseg.settings.train import train_config
from hseg.train import train_variant


def main(args):
    params = load_params(args.params)
    cfg = train_config(params, args.variant, args.seed)  # every param is checked before data is loaded
    check_processes(cfg)  # and train.processes against the GPUs, before torchrun starts any process
    if cfg.processes > 1 and "WORLD_SIZE" not in os.environ:
        # relaunch this same stage under torchrun, one process per device
        os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                  f"--nproc-per-node={cfg.processes}", "-m", "stages.train", *sys.argv[1:]])
    if cfg.init == "imagenet":
        from hseg.models import imagenet_weights_file
        imagenet_weights_file(cfg.encoder)  # fail in seconds if the weights cannot be had
    run = layout.run_name(cfg.variant, cfg.seed)
    train_cache = load_cache(layout.cache_file("train"))
    val_name = layout.validation_split(params)
    val_cache = load_cache(layout.cache_file(val_name))
    tree = class_tree(params, train_cache["leaf_names"])
    last = train_variant(cfg, tree, train_cache, val_cache, weights_out=layout.weights_file(run),
                         live_dir=layout.live_dir(run), resume_path=layout.resume_file(run),
                         progress=not args.no_progress, val_name=val_name)
    if not last:  # not the lead process
        return
    deepest = len(tree.levels) - 1
    print(f"{run}: done, last epoch {val_name} mIoU^{deepest} {last[f'val_miou{deepest}']}; "
          f"weights -> {layout.weights_file(run)}")


if __name__ == "__main__":
    run_cli(main, stage_parser(__doc__, variant=True, seed=True, progress=True))
