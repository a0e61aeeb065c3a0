"""Time training steps of the study's networks with torch's default CPU Adam(W) loop against its
fused kernel (hseg.train.make_optimizer uses fused).

    python benchmarks/optimizer.py                       # the four study networks, batch 16 at 96 px
    python benchmarks/optimizer.py --models unet-resnet34 --size 160 --steps 4

For each network, two copies with the same weights take whole training steps (bf16 autocast,
channels_last, cross-entropy on a random batch) in turn, so machine drift hits both alike; printed:
ms per step and per optimizer.step() for each, the step's speed-up, and the largest difference
of the weights at the end (the two compute the same update, up to float rounding).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hseg.device import model_input, prepare_model  # noqa: E402
from hseg.models import build_model  # noqa: E402

IMPLEMENTATIONS = {"default": {}, "fused": {"fused": True}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["unet-resnet34", "unet-resnet50", "deeplabv3plus-resnet34",
                                                        "deeplabv3plus-resnet50"], help="arch-encoder pairs")
    parser.add_argument("--size", type=int, default=96, help="square input side in pixels")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per implementation")
    args = parser.parse_args(argv)
    print(f"AdamW, cpu, {torch.get_num_threads()} threads, batch {args.batch} at {args.size} px, "
          f"{args.steps} timed steps")
    gen = torch.Generator().manual_seed(0)
    x = model_input(torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8, generator=gen))
    y = torch.randint(0, 7, (args.batch, args.size, args.size), generator=gen)
    for name in args.models:
        arch, encoder = name.split("-")
        nets, opts = {}, {}
        for impl, options in IMPLEMENTATIONS.items():
            torch.manual_seed(0)
            nets[impl] = prepare_model(build_model(arch, encoder, "scratch", 7), torch.device("cpu")).train()
            opts[impl] = torch.optim.AdamW(nets[impl].parameters(), lr=1e-3, weight_decay=1e-4, **options)
        step_s, opt_s = dict.fromkeys(nets, 0.0), dict.fromkeys(nets, 0.0)
        for k in range(args.steps + 1):  # step 0 warms up (allocates the moment buffers)
            for impl in nets:
                start = time.perf_counter()
                opts[impl].zero_grad(set_to_none=True)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = F.cross_entropy(nets[impl](x).float(), y)
                loss.backward()
                mid = time.perf_counter()
                opts[impl].step()
                end = time.perf_counter()
                if k:
                    step_s[impl] += end - start
                    opt_s[impl] += end - mid
        diff = max((a - b).abs().max().item() for a, b in zip(nets["default"].parameters(), nets["fused"].parameters()))
        ms = {impl: (1000 * step_s[impl] / args.steps, 1000 * opt_s[impl] / args.steps) for impl in nets}
        print(f"{name}: " + ", ".join(f"{impl} {a:.0f} ms a step ({b:.1f} in optimizer.step)"
                                      for impl, (a, b) in ms.items())
              + f"; fused steps are {ms['default'][0] / ms['fused'][0]:.2f}x as fast; max |weight diff| {diff:.1e}")


if __name__ == "__main__":
    main()
