"""Matplotlib figures for the plot stage: curves, time to accuracy, bars, prediction grids, confusion, worst
cases."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from .atomic import atomic_path  # noqa: E402
from .colours import colorize, level_palette  # noqa: E402
from .layout import split_run  # noqa: E402
from .metrics import collapse, iou_per_class, levels_in  # noqa: E402
from .tree import ClassTree  # noqa: E402


def save(fig, path: Path, dpi: int) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)


def training_curves(history: dict, variant: str, val_name: str = "val"):
    """history: column -> list (NaN where an epoch was not validated). Loss on the left, mIoU of
    every level in the history on the right, on the split training validated on (``val_name``:
    dev, or val when no dev split was held out)."""
    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(10, 3.6))

    def curve(ax, col, label):
        x, y = np.asarray(history["epoch"], float), np.asarray(history[col], float)
        ax.plot(x[np.isfinite(y)], y[np.isfinite(y)], marker="o", label=label)

    curve(ax_loss, "train_loss", "train")
    curve(ax_loss, "val_loss", val_name)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title=f"{variant}: loss")
    ax_loss.legend()
    for k in levels_in(history, "val_miou"):
        curve(ax_iou, f"val_miou{k}", f"mIoU^{k}")
    ax_iou.set(xlabel="epoch", ylabel=f"{val_name} mIoU (train resolution)",
               title=f"{variant}: {val_name} mIoU", ylim=(0, 1))
    ax_iou.legend()
    fig.tight_layout()
    return fig


def minutes_and_miou(history: pd.DataFrame, level: int) -> tuple[np.ndarray, np.ndarray]:
    """(minutes of training up to each validated epoch, mIoU^level there) from a run's history: the
    minutes are the epochs' logged seconds summed up to it (training plus that epoch's validation) / 60."""
    minutes = history["seconds"].cumsum() / 60
    validated = history[f"val_miou{level}"].notna()
    return minutes[validated].to_numpy(float), history.loc[validated, f"val_miou{level}"].to_numpy(float)


def time_to_accuracy(histories: dict, level: int, val_name: str):
    """One line per run: mIoU^level on the split training validated on (``val_name``) against the minutes
    trained, so runs of different speed or budget compare at equal time."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for run, history in histories.items():
        ax.plot(*minutes_and_miou(history, level), marker="o", markersize=3, label=run)
    ax.set(xlabel="minutes of training (epoch times summed, validation included)",
           ylabel=f"{val_name} mIoU^{level} (train resolution)", xlim=(0, None), ylim=(0, None),
           title=f"{val_name} mIoU^{level} against training time")
    ax.legend(fontsize=7, ncol=1 + len(histories) // 8)
    fig.tight_layout()
    return fig


def curve_tables(histories: dict, deepest: int):
    """(per-epoch training table, per-validation table): every variant's history in one long
    table with a ``variant`` column, so one DVC plot overlays however many variants the study
    has. ``val_miou_leaf`` is the deepest level's mIoU, whatever the depth of the tree; ``minutes`` the
    training minutes up to that validation (as in time_to_accuracy), so `dvc plots diff` overlays the
    time-to-accuracy curves of experiments."""
    frames = [h.assign(variant=v, minutes=h["seconds"].cumsum() / 60) for v, h in histories.items()]
    allrows = pd.concat(frames, ignore_index=True)
    train = allrows[["variant", "epoch", "lr", "train_loss"]]
    val = allrows.dropna(subset=["val_loss"]).assign(val_miou_leaf=lambda d: d[f"val_miou{deepest}"])
    scores = [c for c in val.columns if c.startswith("val_miou")]
    return train, val[["variant", "epoch", "minutes", "val_loss", *scores]]


def miou_bars(scores: dict, tree: ClassTree):
    """Grouped bars: one group per level, one bar per variant at its mean over seeds, with the
    standard deviation as an error bar (two or more seeds) and each seed's value as a dot.
    ``scores``: run name (<variant>-s<seed>) -> its metrics."""
    by_variant: dict[str, list[dict]] = {}
    for run, s in scores.items():
        by_variant.setdefault(split_run(run)[0], []).append(s)
    n_levels = len(tree.levels)
    width = 0.8 / max(len(by_variant), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * n_levels * len(by_variant) ** 0.5 * 2), 4))
    for i, (v, runs) in enumerate(by_variant.items()):
        x = np.arange(n_levels) + (i - (len(by_variant) - 1) / 2) * width
        values = np.array([[r.get(f"miou{k}") or 0.0 for k in range(n_levels)] for r in runs])
        sd = values.std(axis=0, ddof=1) if len(runs) > 1 else None
        bars = ax.bar(x, values.mean(axis=0), width, yerr=sd, capsize=3,
                      label=f"{v} (n={len(runs)})")
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2 if sd is None else 8)
        if len(runs) > 1:
            ax.scatter(np.broadcast_to(x, values.shape), values, s=6, color="black", zorder=3)
    ax.set_xticks(np.arange(n_levels),
                  [f"mIoU^{k}\n({', '.join(tree.levels[k].names[1:])})" if len(tree.levels[k].names) < 5
                   else f"mIoU^{k}\n({len(tree.levels[k].names) - 1} parts)" for k in range(n_levels)])
    ax.set(ylabel="mIoU (val, original resolution)", ylim=(0, 1),
           title="mIoU per level: mean over seeds, ± sd, a dot per seed" if any(len(r) > 1 for r in by_variant.values())
           else "mIoU per level")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def _legend(tree: ClassTree, level: int):
    palette = level_palette(tree, level)
    return [Patch(color=palette[i] / 255, label=name) for i, name in enumerate(tree.levels[level].names)]


def prediction_grid(images: np.ndarray, truth: np.ndarray, pred: np.ndarray, tree: ClassTree, title: str,
                    row_labels: list[str]):
    """Rows: images. Columns: photo, then truth | prediction at each level; one legend per level."""
    n_levels = len(tree.levels)
    rows, cols = len(images), 1 + 2 * n_levels
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.7 * rows + 1.0), squeeze=False,
                             gridspec_kw={"wspace": 0.04, "hspace": 0.08})
    for r in range(rows):
        axes[r, 0].imshow(images[r].transpose(1, 2, 0))
        axes[r, 0].set_ylabel(row_labels[r], fontsize=7)
        for k in range(n_levels):
            axes[r, 1 + 2 * k].imshow(colorize(truth[r], tree, k), interpolation="nearest")
            axes[r, 2 + 2 * k].imshow(colorize(pred[r], tree, k), interpolation="nearest")
    axes[0, 0].set_title("image", fontsize=9)
    for k in range(n_levels):
        axes[0, 1 + 2 * k].set_title(f"truth L{k}", fontsize=9)
        axes[0, 2 + 2 * k].set_title(f"predicted L{k}", fontsize=9)
        left = axes[-1, 1 + 2 * k].get_position()
        right = axes[-1, 2 + 2 * k].get_position()
        fig.legend(handles=_legend(tree, k), loc="upper center", ncol=min(3, len(tree.levels[k].names)),
                   fontsize=7, frameon=False, bbox_to_anchor=((left.x0 + right.x1) / 2, left.y0 - 0.005))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, y=0.995)
    return fig


def confusion_figure(cm: np.ndarray, names: list[str], title: str):
    """Row-normalised confusion matrix: each row (true class) sums to 1."""
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def iou_rows(scores: dict, tree: ClassTree) -> pd.DataFrame:
    """One row per (variant, level, class) with its IoU (NaN where it has none), from the metrics JSONs."""
    return pd.DataFrame([{"label": f"{v} L{k} {name}", "variant": v, "level": k, "class": name,
                          "iou": scores[v][f"iou{k}"][name]}
                         for v in scores for k, level in enumerate(tree.levels) for name in level.names])


def iou_heatmap(rows: pd.DataFrame, title: str):
    """A classes x variants heat map of ``iou_rows``' table, classes in tree order."""
    variants = list(dict.fromkeys(rows["variant"]))
    keys = list(dict.fromkeys(zip(rows["level"], rows["class"])))
    data = (rows.pivot(index=["level", "class"], columns="variant", values="iou")
            .reindex(index=pd.MultiIndex.from_tuples(keys), columns=variants).to_numpy(dtype=float))
    fig, ax = plt.subplots(figsize=(1.6 * len(variants) + 3, 0.4 * len(keys) + 1.5))
    im = ax.imshow(data, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i in range(len(keys)):
        for j in range(len(variants)):
            ax.text(j, i, "-" if np.isnan(data[i, j]) else f"{data[i, j]:.2f}", ha="center", va="center",
                    fontsize=7, color="white" if np.nan_to_num(data[i, j]) < 0.5 else "black")
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(keys)), [f"L{lvl} {name}" for lvl, name in keys], fontsize=8)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    return fig


def per_image_level_miou(per_image_cm: np.ndarray, tree: ClassTree, level: int) -> np.ndarray:
    """mIoU of each image at one level (NaN where the image has no scored class)."""
    level_cms = collapse(per_image_cm, tree.levels[level].leaf_to_level, tree.levels[level].num_classes)
    out = np.empty(len(per_image_cm))
    for i, cm in enumerate(level_cms):
        iou = iou_per_class(cm)[1:]
        out[i] = np.nanmean(iou) if np.isfinite(iou).any() else np.nan
    return out
