"""Benchmark the pipeline's train/evaluate/prepare against the original study's way of training.

Run from the repository root on the real data (after `dvc pull data/pascal-part.dvc`):

    python benchmarks/bench.py                  # UNet-ResNet34 and DeepLabV3+-ResNet50, 256 px, batch 16
    python benchmarks/bench.py --steps 4 --size 128 --models unet-resnet34    # a faster look

For each model it prints, all measured in this run:
  1. train images/s of the pipeline's step (uint8 cache -> batch augmentation -> bf16 autocast, channels_last)
  2. train images/s of a loop written like the original study (per-sample JPEG + mask decode and resize
     in a Dataset, DataLoader(num_workers=0), fp32)
  3. their ratio, and the data overhead: pipeline step / pure bf16 model step on random tensors - 1.
     The ratio is split into the seed loop's data cost (seed step / pure fp32 step), the hardware's
     bf16 gain (pure fp32 step / pure bf16 step) and the pipeline's data overhead.
     All four steps are timed in turn, step by step, so machine drift hits them alike.
  4. evaluate's wall time over the val set vs its pure forward time; prepare's wall time for all images
  5. the achieved training FLOP rate: FLOPs per training image (torch.utils.flop_counter) x images/s
  6. peak RSS of prepare and of a training process (measured in child processes)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hseg.cache import load_cache  # noqa: E402
from hseg.dataset import load_pair, read_classes, read_ids  # noqa: E402
from hseg.device import autocast, normalize, prepare_model  # noqa: E402
from hseg.evaluate import evaluate_model  # noqa: E402
from hseg.inference import predict_logits  # noqa: E402
from hseg.losses import make_loss  # noqa: E402
from hseg.models import build_model  # noqa: E402
from hseg.settings.base import load_params  # noqa: E402
from hseg.settings.classes import class_tree  # noqa: E402
from hseg.settings.study import study_settings  # noqa: E402
from hseg.settings.train import AugmentSettings, LossWeights, train_config  # noqa: E402
from hseg.timing import timed_round_robin  # noqa: E402
from hseg.train import Learner, train_step  # noqa: E402

ROOT = Path("data/pascal-part")


class SeedStyleDataset(torch.utils.data.Dataset):
    """How the original notebook fed the model: open, decode and resize each sample on access."""

    def __init__(self, ids, size):
        self.ids, self.size = ids, size

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        image, mask = load_pair(ROOT, self.ids[i], 7)
        image = np.asarray(Image.fromarray(image).resize((self.size, self.size), Image.BILINEAR))
        mask = np.asarray(Image.fromarray(mask).resize((self.size, self.size), Image.NEAREST))
        x = torch.from_numpy(image.transpose(2, 0, 1).copy()).float() / 255
        return (x - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)) / \
            torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1), torch.from_numpy(mask.astype(np.int64))


def flops_per_image(model, size: int, batch: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch, size, size))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def child_peak_rss_gb(code: str) -> float:
    """Run code in a fresh interpreter; that process's peak RSS in GB (its own workers not included).

    Read from /proc/self/status VmHWM, not getrusage: ru_maxrss of a child also counts the parent's
    memory it shared between fork and exec, which inflated earlier figures."""
    code += ("; print('PEAK_RSS_KB', [l.split()[1] for l in open('/proc/self/status') "
             "if l.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=Path.cwd(), capture_output=True,
                         text=True).stdout
    return int(out.split("PEAK_RSS_KB")[-1].split()[0]) / 1024 ** 2


def seed_like_config(params: dict, variant: str, batch: int):
    """The pipeline's config for a like-for-like step against the original loop:
    whole cached images, flips only, cross-entropy only."""
    seed = study_settings(params).seeds[0]  # as the train stage
    flips_only = AugmentSettings(hflip=True, scale=[1, 1], shift=0, rotate=0, brightness=0, contrast=0)
    ce_only = LossWeights(ce=1, dice=0, lovasz=0, focal=0)
    return train_config(params, variant, seed).model_copy(
        update={"batch_size": batch, "crop": 0, "loss_weights": ce_only, "augment": flips_only})


def bench_model(name: str, args, params, train_cache, val_cache, tree) -> dict:
    arch, encoder = name.split("-")
    cfg = seed_like_config(params, f"{arch}-{encoder}-scratch", args.batch)
    loss_fn = make_loss(tree, "flat", cfg.loss_weights.model_dump())
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    device = torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    n_train = len(train_cache["ids"])
    rows = {}

    # 1. the pipeline's step on real cached batches
    model = prepare_model(build_model(arch, encoder, "scratch", 7), device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(n_train, generator=gen)
    batches = iter(range(10 ** 9))

    learner = Learner(model, opt, scaler, loss_fn, gen, device)

    def pipeline_step():
        k = next(batches) % (n_train // args.batch)
        idx = order[k * args.batch:(k + 1) * args.batch]
        train_step(learner, train_cache["images"], train_cache["masks"], idx, cfg)

    def optimizer_step(net, opt, xb, yb, precision="fp32"):
        with autocast(device, precision):
            loss = F.cross_entropy(net(xb).float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # 2. the original study's loop: per-sample decode + resize, fp32, DataLoader(num_workers=0)
    seed_model = build_model(arch, encoder, "scratch", 7).train()
    seed_opt = torch.optim.Adam(seed_model.parameters(), lr=1e-3)
    loader = iter(torch.utils.data.DataLoader(SeedStyleDataset(train_cache["ids"], args.size),
                                              batch_size=args.batch, shuffle=True, num_workers=0))

    def seed_step():
        xb, yb = next(loader)
        optimizer_step(seed_model, seed_opt, xb, yb)

    # pure model steps on random tensors, to split the ratio into data path and arithmetic
    x = normalize(torch.randint(0, 255, (args.batch, 3, args.size, args.size), dtype=torch.uint8))
    y = torch.randint(0, 7, (args.batch, args.size, args.size))
    x_channels_last = x.contiguous(memory_format=torch.channels_last)

    t = timed_round_robin({"pipeline": pipeline_step,
                           "pure_bf16": lambda: optimizer_step(model, opt, x_channels_last, y, "bf16"),
                           "seed": seed_step,
                           "pure_fp32": lambda: optimizer_step(seed_model, seed_opt, x, y)}, args.steps)
    rows["pipeline_img_s"] = args.batch / t["pipeline"]
    rows["seed_img_s"] = args.batch / t["seed"]
    rows["ratio"] = t["seed"] / t["pipeline"]
    rows["pure_step_s"] = t["pure_bf16"]
    rows["pure_fp32_step_s"] = t["pure_fp32"]
    rows["data_overhead"] = t["pipeline"] / t["pure_bf16"] - 1
    # ratio = (seed / pure fp32) x (pure fp32 / pure bf16) x (pure bf16 / pipeline)
    rows["seed_data_factor"] = t["seed"] / t["pure_fp32"]
    rows["bf16_gain"] = t["pure_fp32"] / t["pure_bf16"]

    # 5. FLOP rate
    rows["gflop_per_train_image"] = flops_per_image(build_model(arch, encoder, "scratch", 7), args.size, 2) / 1e9
    rows["achieved_tflop_s"] = rows["gflop_per_train_image"] * rows["pipeline_img_s"] / 1e3

    # 4. evaluate vs pure forward over the val set
    model.eval()
    start = time.perf_counter()
    evaluate_model(model, "flat", val_cache, tree, device, "bf16", args.batch, progress=False)
    rows["evaluate_s"] = time.perf_counter() - start
    start = time.perf_counter()
    for lo in range(0, len(val_cache["ids"]), args.batch):
        predict_logits(model, val_cache["images"][lo:lo + args.batch], device, "bf16")
    rows["forward_s"] = time.perf_counter() - start
    rows["evaluate_vs_forward"] = rows["evaluate_s"] / rows["forward_s"]

    # 6. peak RSS of a training process: load both caches, train a few steps
    rows["train_peak_rss_gb"] = child_peak_rss_gb(
        "import sys, torch; sys.path.insert(0, '.');"
        "from hseg.settings.base import load_params; from hseg.settings.classes import class_tree;"
        "from hseg.prepare import build_cache; from hseg.dataset import read_ids, read_classes;"
        "from hseg.train import Learner, train_step; from hseg.models import build_model; "
        "from hseg.device import prepare_model;"
        "from hseg.losses import make_loss; sys.path.insert(0, 'benchmarks'); from bench import seed_like_config;"
        f"p = load_params(); cfg = seed_like_config(p, '{arch}-{encoder}-scratch', {args.batch});"
        "s = torch.amp.GradScaler('cpu', enabled=False);"
        "from hseg.cache import load_cache;"
        f"c = load_cache('{args.cache_dir}/train.pt'); v = load_cache('{args.cache_dir}/val.pt');"
        "t = class_tree(p, c['leaf_names']); lf = make_loss(t, 'flat', cfg.loss_weights.model_dump()); "
        "m = prepare_model(build_model(cfg.arch, cfg.encoder, 'scratch', 7), torch.device('cpu'));"
        "o = torch.optim.Adam(m.parameters()); g = torch.Generator().manual_seed(0);"
        # touch every cached tensor, as a whole epoch plus validation would, so they count as resident
        "[t.max() for cache in (c, v) for t in cache.values() if isinstance(t, torch.Tensor) and t.numel()];"
        "l = Learner(m, o, s, lf, g, torch.device('cpu'));"
        f"[train_step(l, c['images'], c['masks'], torch.arange(i*{args.batch}, (i+1)*{args.batch}), cfg) "
        "for i in range(3)]")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["unet-resnet34", "deeplabv3plus-resnet50"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement (after 1 warm-up)")
    parser.add_argument("--cache-dir", default="/tmp/hseg-bench-cache")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.manual_seed(0)
    params = load_params()
    leaf_names = read_classes(ROOT / "classes.txt")
    tree = class_tree(params, leaf_names)
    train_ids, val_ids = read_ids(ROOT / "train_id.txt"), read_ids(ROOT / "val_id.txt")

    # prepare: wall time and peak RSS in a child process that builds and saves both caches
    Path(args.cache_dir).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    prepare_rss = child_peak_rss_gb(
        "import sys, torch; sys.path.insert(0, '.');"
        "from pathlib import Path; from hseg.prepare import build_cache; from hseg.cache import save_cache; "
        "from hseg.dataset import read_ids, read_classes;"
        "r = Path('data/pascal-part'); names = read_classes(r / 'classes.txt');"
        "[save_cache({**build_cache(r, read_ids(r / f'{s}_id.txt'), "
        "7, " + str(args.size) + ", keep_full_masks=(s == 'val'), "
        "desc=s), 'leaf_names': names}, Path('" + args.cache_dir + "') / f'{s}.pt') for s in ('train', 'val')]")
    prepare_s = time.perf_counter() - start
    train_cache = load_cache(Path(args.cache_dir) / "train.pt")
    val_cache = load_cache(Path(args.cache_dir) / "val.pt")
    print(f"\nprepare: {len(train_ids) + len(val_ids)} images at {args.size}px in {prepare_s:.1f}s "
          f"(includes interpreter start and saving), peak RSS {prepare_rss:.2f} GB")

    results = {"prepare_s": prepare_s, "prepare_peak_rss_gb": prepare_rss, "size": args.size, "batch": args.batch,
               "steps": args.steps, "threads": torch.get_num_threads(), "models": {}}
    for name in args.models:
        r = bench_model(name, args, params, train_cache, val_cache, tree)
        results["models"][name] = r
        print(f"\n{name} @ {args.size}px, batch {args.batch}, {args.steps} timed steps, "
              f"{torch.get_num_threads()} threads")
        print(f"  pipeline train        {r['pipeline_img_s']:7.2f} img/s")
        print(f"  original-style train  {r['seed_img_s']:7.2f} img/s")
        print(f"  ratio                 {r['ratio']:7.2f}x  = seed data path {r['seed_data_factor']:.2f}x"
              f" * bf16 over fp32 on random tensors {r['bf16_gain']:.2f}x * 1/(1 + data overhead)")
        print(f"  data overhead         {r['data_overhead']:7.1%}  (pipeline step vs pure bf16 step "
              f"{r['pure_step_s']:.2f}s; fp32 {r['pure_fp32_step_s']:.2f}s)")
        print(f"  FLOPs/train image     {r['gflop_per_train_image']:7.1f} GFLOP -> "
              f"{r['achieved_tflop_s']:.3f} TFLOP/s achieved")
        print(f"  evaluate (707 val)    {r['evaluate_s']:7.1f}s vs pure forward {r['forward_s']:.1f}s "
              f"= {r['evaluate_vs_forward']:.2f}x")
        print(f"  train peak RSS        {r['train_peak_rss_gb']:7.2f} GB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
