"""Print the study's results from metrics/summary.json (the summarize stage) alone: for each variant
the epochs trained, per level the mean +- sd of mIoU over seeds with the per-seed values, the smallest
leaf's mean IoU, which paired differences between variants are resolved (their 95 % interval excludes 0)
and which of those survive Holm's correction over every difference printed (hseg/significance.py).

    python -m hseg report              # the table and the differences
    python -m hseg report --markdown   # the table as the README shows it
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import layout
from .atomic import atomic_path
from .errors import UserError
from .metrics import levels_in
from .significance import holm, paired_p


def level_header(entry: dict, k: int) -> str:
    """'mIoU^k (its classes)', the classes named from the tree the metrics were scored with."""
    names = [c for c in entry.get(f"iou{k}", {})][1:]  # background is always class 0
    shown = ", ".join(names) if len(names) <= 4 else ", ".join(names[:3]) + f", ... {len(names)} classes"
    return f"mIoU^{k} ({shown})"


def mean_sd(stats: dict) -> str:
    return f"{stats['mean']:.3f}" + ("" if stats["sd"] is None else f" ± {stats['sd']:.3f}")


def smallest_leaf(entry: dict, deepest: int) -> str:
    """The leaf class with the lowest mean IoU (background excluded) and that mean."""
    leaves = list(entry[f"iou{deepest}"].items())[1:]
    name, stats = min(leaves, key=lambda item: item[1]["mean"])
    return f"{stats['mean']:.3f} ({name})"


def machine_line(m: dict | None) -> str:
    """'AMD EPYC (family 25, model 17), avx512_bf16' - the CPU (or GPU) and its bf16 ISA flags."""
    if not m:
        return "not recorded"
    bf16 = [f for f in m.get("isa", []) if "bf16" in f or "amx" in f]
    return m.get("gpu") or f"{m['cpu']}" + (f", {'+'.join(bf16)}" if bf16 else ", no bf16 ISA")


def epochs_column(entry: dict) -> str:
    """The epochs the variant's seeds trained ('8', or '8/12' where they differ); '-' where a summary from
    before they were recorded has none."""
    return "/".join(str(e) for e in sorted(set(entry.get("epochs", [])) - {None})) or "-"


def results_table(summary: dict) -> str:
    """Markdown: one row per variant, mean ± sd over seeds per level, then the per-seed values."""
    variants = summary["variants"]
    first = next(iter(variants.values()))
    ks = levels_in(first)
    deepest = ks[-1]
    rows = ["| variant | epochs | " + " | ".join(level_header(first, k) for k in ks)
            + f" | smallest leaf IoU | mIoU^{deepest} per seed |",
            "| --- " * (len(ks) + 4) + "|"]
    for name, entry in variants.items():
        per_seed = ", ".join(f"{v:.3f}" for v in entry[f"miou{deepest}"]["values"])
        rows.append(f"| {name} | {epochs_column(entry)} | "
                    + " | ".join(mean_sd(entry[f"miou{k}"]) for k in ks)
                    + f" | {smallest_leaf(entry, deepest)} | {per_seed} |")
    seeds = summary["seeds"]
    rows.append("")
    rows.append(f"Mean ± sd over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}), scored on the val split.")
    machines = sorted({machine_line(m) for m in summary.get("trained_on", {}).values()})
    rows.append(f"Trained on: {'; '.join(machines) or 'not recorded'}.")
    return "\n".join(rows)


def differences(summary: dict, alpha: float = 0.05) -> str:
    """One line per pair of variants and level: the paired difference, its interval, resolved or a tie,
    and whether it stays resolved under Holm's correction over every difference printed."""
    if not summary["differences"]:
        return "Paired differences: none (one variant)."
    rows = [(pair, key, d) for pair, by_level in summary["differences"].items() for key, d in by_level.items()]
    p_values = {i: p for i, (_, _, d) in enumerate(rows) if (p := paired_p(d)) is not None}   # one seed: no test
    after_holm = dict(zip(p_values, holm(list(p_values.values()), alpha)))
    lines = ["Paired differences (A - B over the same seeds; 95 % t interval, a tie unless it excludes 0; "
             "p of the two-sided paired t test; Holm: over every difference below):"]
    for i, (pair, key, d) in enumerate(rows):
        if d["ci95"] is None:  # one seed: no spread to judge the difference by
            interval, verdict = "(one seed: no interval)", "unresolved"
        else:
            interval = f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
            holm_verdict = "resolved after Holm" if after_holm[i] else "not after Holm"
            verdict = f"{'resolved' if d['resolved'] else 'tie'}; {holm_verdict} (p {p_values[i]:.4f})"
        lines.append(f"  {key.replace('miou', 'mIoU^')}  {pair}: {d['mean']:+.3f} {interval}  {verdict}")
    if p_values:
        m, pairs = len(p_values), len(summary["differences"])
        family = f"pairs x levels: {pairs} x {len(rows) // pairs}" if m == len(rows) else "one-seed pairs left out"
        lines.append(f"Holm-Bonferroni at {alpha:g} (two-sided) over a family of {m} differences ({family}): "
                     f"{sum(after_holm.values())} survive, of {sum(bool(d['resolved']) for _, _, d in rows)} "
                     f"resolved without correction (the smallest p must be <= {alpha / m:.4f}).")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hseg report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summary", type=Path, default=layout.SUMMARY, help="the summarize stage's output")
    parser.add_argument("--markdown", action="store_true", help="only the table, as the README shows it")
    parser.add_argument("--update", type=Path, metavar="FILE",
                        help=f"write the table into FILE between {START} and {END} (e.g. README.md)")
    return parser


START, END = "<!-- report:start -->", "<!-- report:end -->"


def update_block(path: Path, table: str) -> None:
    """Replace what ``path`` holds between START and END by ``table``."""
    text = Path(path).read_text()
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise UserError(f"{path} must hold one {START} line followed by one {END} line; add them where the "
                        f"table goes")
    head, rest = text.split(START)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}")


def no_summary(summary_path: Path) -> str:
    return f"no {summary_path} yet: run the study first (`python -m hseg exp quick` or `dvc repro`)"


def report(summary_path: Path, markdown: bool) -> str:
    if not Path(summary_path).is_file():
        return no_summary(summary_path)
    summary = json.loads(Path(summary_path).read_text())
    table = results_table(summary)
    return table if markdown else table + "\n\n" + differences(summary)


def run(args) -> int:
    if args.update:
        if not Path(args.summary).is_file():
            raise UserError(no_summary(args.summary))
        update_block(args.update, report(args.summary, markdown=True))
        print(f"table -> {args.update}")
        return 0
    print(report(args.summary, args.markdown))
    return 0
