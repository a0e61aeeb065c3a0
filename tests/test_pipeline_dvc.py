"""End to end with the real DVC CLI in a temporary git + dvc repository on synthetic data."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.synthetic import make_dataset

ROOT = Path(__file__).resolve().parent.parent
DVC = [sys.executable, "-m", "dvc"]
VARIANTS = ["unet-resnet34-scratch", "deeplabv3plus-resnet34-scratch"]


def sh(args, cwd, check=True):
    # dvc runs the stage commands (`python -m stages...`) through the shell: put this
    # interpreter's folder first on PATH, as an activated virtual environment would
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(cwd), "PATH": path}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def set_param(repo: Path, dotted: str, value):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    *path, last = dotted.split(".")
    node = params
    for key in path:
        node = node[key]
    node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("study")
    for name in ("stages", "hseg"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    make_dataset(repo / "data" / "pascal-part", n_train=16, n_val=6)
    set_param(repo, "prepare.size", 64)
    set_param(repo, "train.epochs", 1)
    set_param(repo, "train.batch_size", 8)
    set_param(repo, "study.encoders", ["resnet34"])
    set_param(repo, "study.weights", ["scratch"])
    sh(["git", "init", "-q"], repo)
    sh(["git", "config", "user.email", "t@example.com"], repo)
    sh(["git", "config", "user.name", "t"], repo)
    sh(DVC + ["init", "-q"], repo)
    return repo


def commit(repo, message):
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", message], repo)


def test_first_repro_runs_every_stage_and_writes_three_levels(repo):
    out = sh(DVC + ["repro"], repo).stdout
    expected = {"prepare", "plot"} | {f"{s}@{v}" for s in ("train", "evaluate") for v in VARIANTS}
    assert ran(out) == expected
    for v in VARIANTS:
        metrics = json.loads((repo / "metrics" / f"{v}.json").read_text())
        for k in range(3):
            assert 0.0 <= metrics[f"miou{k}"] <= 1.0
        assert set(metrics["iou1"]) == {"bg", "upper_body", "lower_body"}
        assert (repo / "models" / f"{v}.pt").is_file()
        assert (repo / "plots" / "history" / f"{v}.csv").read_text().startswith("epoch,")
        assert (repo / "plots" / "figures" / f"predictions_{v}.png").is_file()
    assert (repo / "plots" / "figures" / "miou_by_level.png").is_file()
    commit(repo, "first study")


def test_second_repro_runs_nothing(repo):
    out = sh(DVC + ["repro"], repo).stdout
    assert ran(out) == set()
    assert "Data and pipelines are up to date" in sh(DVC + ["status"], repo).stdout


def test_variant_param_reruns_only_that_variant(repo):
    set_param(repo, "variants.unet-resnet34-scratch", {"lr": 0.0005})
    status = sh(DVC + ["status"], repo).stdout
    assert "train@unet-resnet34-scratch" in status and "variants.unet-resnet34-scratch" in status
    assert "deeplabv3plus" not in status and "prepare" not in status
    out = sh(DVC + ["repro"], repo).stdout
    assert ran(out) == {"train@unet-resnet34-scratch", "evaluate@unet-resnet34-scratch", "plot"}


def test_epochs_rerun_trains_and_downstream_not_prepare(repo):
    set_param(repo, "train.epochs", 2)
    out = sh(DVC + ["repro"], repo).stdout
    assert ran(out) == {"plot"} | {f"{s}@{v}" for s in ("train", "evaluate") for v in VARIANTS}
    history = (repo / "plots" / "history" / f"{VARIANTS[0]}.csv").read_text().strip().splitlines()
    assert len(history) == 3  # header + 2 epochs


def test_plot_setting_reruns_only_plot(repo):
    set_param(repo, "plot.dpi", 60)
    assert ran(sh(DVC + ["repro"], repo).stdout) == {"plot"}


def test_metrics_show_and_plots_diff(repo):
    shown = sh(DVC + ["metrics", "show"], repo).stdout
    for v in VARIANTS:
        assert f"metrics/{v}.json" in shown
    assert "miou2" in shown
    diff = sh(DVC + ["plots", "diff", "HEAD", "--json"], repo)
    data = json.loads(diff.stdout)["data"]
    assert "val_miou2" in data and "train_loss" in data
    revisions = {rev for plot in data["val_miou2"] for rev in plot["revisions"]}
    assert revisions == {"HEAD", "workspace"}


def test_plots_show_writes_an_html_report_with_curves_and_figures(repo):
    out = repo / "report"
    sh(DVC + ["plots", "show", "-o", str(out)], repo)
    html = (out / "index.html").read_text()
    # one vega-lite spec per chart (rendered by vega-embed in the browser) and the PNG figures
    assert html.count("vegaEmbed(") >= 3
    assert '"val_miou2"' in html or "val_miou2" in html
    for v in VARIANTS:
        assert f"predictions_{v}.png" in html and f"confusion_{v}.png" in html
    assert "miou_by_level.png" in html
    images = list((out / "static").glob("*.png"))
    assert len(images) >= 2 * len(VARIANTS) + 2
