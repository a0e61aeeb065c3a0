"""Time a training step of one network at several decoder widths (train.decoder_width), to see
what a lighter decoder buys in epochs per hour before spending an hour on it.

    python benchmarks/decoder.py                                   # UNet-ResNet34, widths 1 and 0.5, 96/160/224 px
    python benchmarks/decoder.py --model deeplabv3plus-resnet34 --widths 1 0.75 0.5 --sizes 160

Each width's network takes whole training steps (bf16 autocast where the CPU has it, channels_last,
fused AdamW, cross-entropy on a random batch of 16), the widths in turn so machine drift hits all
alike; printed: ms a step per width and side, and each width's step time as a fraction of width 1's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hseg.cli import run_cli  # noqa: E402
from hseg.device import model_input, prepare_model, resolve_precision  # noqa: E402
from hseg.models import build_model, decoder_channels  # noqa: E402
from hseg.timing import timed_round_robin  # noqa: E402


def training_step(net, x, y, dtype):
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(net(x).float(), y)
        loss.backward()
        opt.step()
    return step


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="unet-resnet34", help="arch-encoder pair")
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.5],
                        help="decoder widths; the first is the baseline")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 160, 224], help="square input sides in pixels")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per width and side (after one warm-up)")
    return parser


def main(args: argparse.Namespace) -> None:
    arch, encoder = args.model.split("-", 1)
    precision = resolve_precision("auto", torch.device("cpu"))
    dtype = torch.bfloat16 if precision == "bf16" else None
    print(f"{args.model}, cpu, {torch.get_num_threads()} threads, {precision}, batch {args.batch}, "
          f"{args.steps} timed steps; decoder_channels: "
          + ", ".join(f"{w:g} -> {decoder_channels(arch, w).get('decoder_channels', 'default')}" for w in args.widths))
    gen = torch.Generator().manual_seed(0)
    for size in args.sizes:
        x = model_input(torch.randint(0, 256, (args.batch, 3, size, size), dtype=torch.uint8, generator=gen))
        y = torch.randint(0, 7, (args.batch, size, size), generator=gen)
        steps = {}
        for width in args.widths:
            torch.manual_seed(0)
            net = prepare_model(build_model(arch, encoder, "scratch", 7, width), torch.device("cpu")).train()
            steps[width] = training_step(net, x, y, dtype)
        seconds = timed_round_robin(steps, args.steps)
        base = seconds[args.widths[0]]
        print(f"{size} px: " + ", ".join(f"width {w:g} {1000 * s:.0f} ms a step ({s / base:.2f}x)"
                                         for w, s in seconds.items()), flush=True)


if __name__ == "__main__":
    run_cli(main, parser())
