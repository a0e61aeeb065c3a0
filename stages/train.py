"""Stage train@<variant>: train one arch-encoder-weights variant on the prepared cache."""
import os
import sys

from hseg import layout
from hseg.cache import load_cache
from hseg.cli import run_cli, stage_parser
from hseg.settings.base import load_params
from hseg.settings.classes import class_tree
from hseg.settings.study import study_settings
from hseg.settings.train import train_config
from hseg.train import train_variant


def main(args):
    params = load_params(args.params)
    seed = study_settings(params).seeds[0] if args.seed is None else args.seed
    cfg = train_config(params, args.variant, seed)  # every param is checked before data is loaded
    if cfg.processes > 1 and "WORLD_SIZE" not in os.environ:
        # relaunch this same stage under torchrun, one process per device
        os.execv(sys.executable, [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                  f"--nproc-per-node={cfg.processes}", "-m", "stages.train", *sys.argv[1:]])
    if cfg.weights == "imagenet":
        from hseg.models import imagenet_weights_file
        imagenet_weights_file(cfg.encoder)  # fail in seconds if the weights cannot be had
    train_cache, val_cache = load_cache(layout.cache_file("train")), load_cache(layout.cache_file("val"))
    tree = class_tree(params, train_cache["leaf_names"])
    last = train_variant(cfg, tree, train_cache, val_cache, weights_out=layout.weights_file(cfg.variant),
                         live_dir=layout.live_dir(cfg.variant), resume_path=layout.resume_file(cfg.variant),
                         progress=not args.no_progress)
    if not last:  # not the lead process
        return
    deepest = len(tree.levels) - 1
    print(f"{cfg.variant}: done, last epoch val mIoU^{deepest} {last[f'val_miou{deepest}']}; weights -> "
          f"{layout.weights_file(cfg.variant)}")


if __name__ == "__main__":
    parser = stage_parser(__doc__, variant=True, progress=True)
    parser.add_argument("--seed", type=int, help="the training seed (default: the first of study.seeds)")
    run_cli(main, parser)
