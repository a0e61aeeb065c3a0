"""`python -m hseg report`: mean ± sd per variant and level, per-seed values, resolved differences;
and the README's headline table is the report of the committed metrics."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hseg.report import END, START, report
from hseg.summary import summarize
from tests.conftest import committed_files, committed_text

ROOT = Path(__file__).resolve().parent.parent


def metrics(m0, m1, head, torso):
    return {"miou0": m0, "miou1": m1, "iou0": {"bg": 0.9, "body": m0},
            "iou1": {"bg": 0.9, "head": head, "torso": torso}}


def write_study(folder: Path) -> Path:
    scores = {"unet-resnet34-scratch": {42: metrics(0.60, 0.30, 0.35, 0.25), 43: metrics(0.62, 0.32, 0.36, 0.28),
                                        44: metrics(0.64, 0.31, 0.33, 0.29)},
              "deeplabv3plus-resnet34-scratch": {42: metrics(0.50, 0.30, 0.31, 0.29),
                                                 43: metrics(0.51, 0.31, 0.30, 0.32),
                                                 44: metrics(0.52, 0.33, 0.34, 0.32)}}
    for variant in scores:
        for seed in (42, 43, 44):
            live = folder / "dvclive" / f"{variant}-s{seed}"
            live.mkdir(parents=True)
            (live / "metrics.json").write_text(json.dumps({"step": 7}))
    path = folder / "summary.json"
    path.write_text(json.dumps(summarize(scores, [42, 43, 44])))
    return path


def test_report_shows_mean_sd_per_seed_values_and_verdicts(tmp_path):
    text = report(write_study(tmp_path), tmp_path / "dvclive", markdown=False)
    # UNet mIoU^0: 0.60, 0.62, 0.64 -> 0.620 ± 0.020; mIoU^1: 0.30, 0.32, 0.31 -> 0.310 ± 0.010
    # torso (0.25 + 0.28 + 0.29) / 3
    assert "| unet-resnet34-scratch | 7 | 0.620 ± 0.020 | 0.310 ± 0.010 | 0.273 (torso) | 0.300, 0.320, 0.310 |" in text
    assert "mIoU^1 (head, torso)" in text and "Mean ± sd over 3 seed(s) (42, 43, 44)" in text
    # mIoU^0 differences 0.10, 0.11, 0.12: mean 0.11, sd 0.01, half-width 4.3027 * 0.01 / sqrt 3 = 0.0248
    assert "mIoU^0  unet-resnet34-scratch - deeplabv3plus-resnet34-scratch: +0.110 [+0.085, +0.135]  resolved" in text
    # mIoU^1 differences 0.00, 0.01, -0.02: a tie
    assert re.search(r"mIoU\^1  unet\S+ - deeplab\S+: -0\.003 \[-\S+, \+\S+\]  tie", text)


def test_one_variant_has_no_pairs_to_compare(tmp_path):
    path = tmp_path / "summary.json"
    scores = {"unet-resnet34-scratch": {42: metrics(0.60, 0.30, 0.35, 0.25), 43: metrics(0.62, 0.32, 0.36, 0.28)}}
    path.write_text(json.dumps(summarize(scores, [42, 43])))
    text = report(path, tmp_path / "dvclive", markdown=False)
    # mIoU^0 0.60, 0.62 -> 0.610 ± 0.014 (sd of two values: |a - b| / sqrt 2)
    assert "| unet-resnet34-scratch | - | 0.610 ± 0.014 |" in text
    assert text.endswith("Paired differences: none (one variant).") and "95 % t interval" not in text


def test_report_cli_without_a_summary_says_what_to_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hseg", "report", "--summary", str(tmp_path / "none.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "run the study first" in proc.stdout


@pytest.mark.parametrize("readme, summary, live", [
    ("README.md", "metrics/summary.json", "dvclive"),
    ("results/hour-dev/README.md", "results/hour-dev/summary.json", "results/hour-dev/dvclive"),
])
def test_committed_tables_are_the_report_of_their_summary(readme, summary, live, tmp_path):
    """From git, not the workspace: an experiment (`python -m hseg exp quick`) rewrites metrics/ and dvclive/."""
    for path in [summary, *committed_files(live, "metrics.json")]:   # dvclive's metrics.json: epochs per run
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(committed_text(path))
    found = re.search(f"{re.escape(START)}\n(.*?)\n{re.escape(END)}", committed_text(readme), re.S)
    assert found, f"{readme} has no {START} ... {END} block"
    expected = report(tmp_path / summary, tmp_path / live, markdown=True)
    assert found.group(1).strip() == expected.strip(), (
        f"regenerate it: python -m hseg report --summary {summary} --live-dir {live} --update {readme}, "
        f"then `git add` both")


def test_update_writes_the_table_between_the_markers_and_keeps_the_rest(tmp_path):
    summary = write_study(tmp_path)
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n<!-- report:start -->\nold table\n<!-- report:end -->\n\nafter\n")
    cmd = [sys.executable, "-m", "hseg", "report", "--summary", str(summary), "--live-dir", str(tmp_path / "dvclive"),
           "--update", str(page)]
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=60).returncode == 0
    table = report(summary, tmp_path / "dvclive", markdown=True)
    assert page.read_text() == f"# Title\n\n<!-- report:start -->\n{table}\n<!-- report:end -->\n\nafter\n"
    page.write_text("no markers\n")   # refused, and the file is left as it was
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "must hold one <!-- report:start -->" in proc.stderr
    assert page.read_text() == "no markers\n"


def test_summarize_and_report_do_not_import_torch():
    """They read JSON only; torch's import alone costs them seconds."""
    code = ("import sys, hseg.report, hseg.summary, stages.summarize; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


@pytest.mark.parametrize("metrics_dir", ["results/hour-dev/metrics", "results/hour-dev/intel/metrics"])
def test_per_seed_rows_of_the_hour_model_are_its_runs_metrics(metrics_dir):
    """results/hour-dev's per-seed tables are copied from the runs' metrics: each run has its row."""
    text = (ROOT / "results" / "hour-dev" / "README.md").read_text()
    files = sorted((ROOT / metrics_dir).glob("*-s*.json"))
    assert files, f"no per-seed metrics in {metrics_dir}"
    for path in files:
        m = json.loads(path.read_text())
        seed = re.search(r"-s(\d+)\.json$", path.name).group(1)
        leaves = ", ".join(f"{v:.3f}" for v in list(m["iou2"].values())[1:])   # background first
        row = f"| {seed} | {m['miou0']:.4f} / {m['miou1']:.4f} / {m['miou2']:.4f} | {leaves} |"
        assert row in text, f"{path}: results/hour-dev/README.md has no row {row}"
