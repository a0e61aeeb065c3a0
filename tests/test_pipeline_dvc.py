"""End to end with the real DVC CLI in temporary git + dvc repositories on synthetic data. Each test
starts from its own copy of a prepared repository (tests/dvc_repo.py), so any one runs alone."""
# ruff: noqa: F811 (the fixtures imported from tests.dvc_repo are test arguments of the same name)
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hseg.tracking import read_history
from hseg.versions import machine
from tests.dvc_repo import (  # noqa: F401 (repo, study_baseline, unet_baseline, unet_repo are fixtures)
    DVC,
    RUNS,
    SEED,
    VARIANTS,
    commit,
    ran,
    repo,
    set_param,
    sh,
    stages,
    study_baseline,
    unet_baseline,
    unet_repo,
)

pytestmark = pytest.mark.slow  # every test runs DVC on a repository with trained models (minutes in all)


def test_first_repro_runs_every_stage_and_writes_three_levels(study_baseline, repo):
    """The baseline's first `dvc repro` (its output kept by the fixture), checked in this test's copy."""
    assert ran(study_baseline.first_repro) == {"prepare", "summarize", "plot"} | stages("train") | stages("evaluate")
    dev = (repo / "data" / "prepared" / "dev_ids.txt").read_text().split()
    assert dev and json.loads((repo / "data" / "prepared" / "summary.json").read_text())["dev"] == len(dev)
    for v in RUNS:
        metrics = json.loads((repo / "metrics" / "runs" / f"{v}.json").read_text())
        for k in range(3):
            assert 0.0 <= metrics[f"miou{k}"] <= 1.0
        assert set(metrics["iou1"]) == {"bg", "upper_body", "lower_body"}
        assert metrics["machine"]["train"] == metrics["machine"]["evaluate"] == machine()   # the CPU is recorded
        assert metrics["epochs"] == 1 and "consistency" not in metrics   # epochs from the weights' metadata
        assert (repo / "models" / f"{v}.pt").is_file()
        assert read_history(repo / "dvclive" / v)["epoch"].tolist() == [1]
        assert json.loads((repo / "dvclive" / v / "metrics.json").read_text())["step"] == 1
        assert (repo / "plots" / "figures" / f"predictions_{v}.png").is_file()
    assert (repo / "plots" / "figures" / "miou_by_level.png").is_file()
    assert (repo / "plots" / "figures" / "time_to_accuracy.png").is_file()
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert list(summary["variants"]) == VARIANTS and summary["seeds"] == [SEED]
    assert all(summary["variants"][v]["epochs"] == [1] for v in VARIANTS)
    log = sh(["git", "log", "--format=%s"], repo).stdout.split("\n")
    assert log[0] == "first study" and sh(["git", "status", "--porcelain"], repo).stdout == ""  # all committed


def test_second_repro_runs_nothing(repo):
    # a copy of the baseline: DVC's cache is the copy's own, so nothing below touches the baseline
    assert Path(sh(DVC + ["cache", "dir"], repo).stdout.strip()).resolve() == (repo / ".dvc" / "cache").resolve()
    out = sh(DVC + ["repro"], repo).stdout
    assert ran(out) == set()
    assert "Data and pipelines are up to date" in sh(DVC + ["status"], repo).stdout


def test_variant_param_reruns_only_that_variant(repo):
    set_param(repo, "variants.unet-resnet34-scratch", {"lr": 0.0005})
    status = sh(DVC + ["status"], repo).stdout
    assert f"train@unet-resnet34-scratch-{SEED}" in status and "variants.unet-resnet34-scratch" in status
    assert "deeplabv3plus" not in status and "prepare" not in status
    out = sh(DVC + ["repro"], repo).stdout
    assert ran(out) == stages("train", VARIANTS[:1]) | stages("evaluate", VARIANTS[:1]) | {"summarize", "plot"}


def test_epochs_rerun_trains_and_downstream_not_prepare(repo):
    set_param(repo, "train.epochs", 2)
    out = sh(DVC + ["repro"], repo).stdout
    assert ran(out) == {"summarize", "plot"} | stages("train") | stages("evaluate")
    assert read_history(repo / "dvclive" / RUNS[0])["epoch"].tolist() == [1, 2]
    # the epochs reach the report through the weights, the run's metrics and the summary alone
    assert json.loads((repo / "metrics" / "runs" / f"{RUNS[0]}.json").read_text())["epochs"] == 2
    shutil.rmtree(repo / "dvclive")
    assert f"| {VARIANTS[0]} | 2 |" in sh([sys.executable, "-m", "hseg", "report", "--markdown"], repo).stdout


def test_adding_a_seed_runs_only_that_seeds_stages_and_the_summary(repo):
    set_param(repo, "study.seeds", [SEED, 7])
    out = sh(DVC + ["repro"], repo).stdout
    assert ran(out) == stages("train", seed=7) | stages("evaluate", seed=7) | {"summarize", "plot"}
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert summary["seeds"] == [SEED, 7] and summary["variants"][VARIANTS[0]]["miou2"]["n"] == 2
    pair = summary["differences"][f"{VARIANTS[0]} - {VARIANTS[1]}"]["miou2"]
    assert pair["n"] == 2 and len(pair["ci95"]) == 2
    set_param(repo, "study.seeds", [SEED])   # back: the runs of seed 42 are unchanged, so only these rerun
    assert ran(sh(DVC + ["repro"], repo).stdout) == {"summarize", "plot"}


def test_a_fresh_clone_reports_only_what_is_not_built_yet(repo, tmp_path):
    """A clone holds git's files alone, so every DVC output is missing: `dvc status` may say 'deleted' or
    'not in cache' and nothing else. Plot depends on evaluate's npz folder, which git ignores whole, so no
    tracked .gitignore inside it makes that dependency 'modified'. Checked out, nothing is left to run."""
    assert sh(["git", "ls-files", "metrics/details"], repo).stdout == ""
    assert sorted(p.name for p in (repo / "metrics" / "details").iterdir()) == sorted(f"{r}.npz" for r in RUNS)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "metrics" / "details").exists()
    status = json.loads(sh(DVC + ["status", "--json"], clone).stdout)
    states = {(stage, kind, path): state for stage, entries in status.items() for entry in entries
              for kind, changes in entry.items() for path, state in changes.items()}
    assert set(states.values()) == {"deleted", "not in cache"}, states
    assert states[("plot", "changed deps", "metrics/details")] == "deleted"
    assert {path for (stage, kind, path) in states if stage == "plot"} == {"data/prepared", "metrics/details"}
    # what `dvc pull` does, from the cache the study was built into
    sh(DVC + ["cache", "dir", str(repo / ".dvc" / "cache")], clone)
    sh(DVC + ["checkout", "-q"], clone)
    assert "Data and pipelines are up to date" in sh(DVC + ["status"], clone).stdout
    assert sh(["git", "status", "--porcelain", "--", "metrics"], clone).stdout == ""


def test_plot_setting_reruns_only_plot(repo):
    set_param(repo, "plot.dpi", 60)
    assert ran(sh(DVC + ["repro"], repo).stdout) == {"plot"}


def changed_stages(repo) -> set[str]:
    """What `dvc status` lists, from DVC's own Repo.status (the CLI's --json output) in this process:
    the same answer without starting DVC once per question."""
    from dvc.repo import Repo
    with Repo(str(repo)) as dvc_repo:   # stage names come relative to the cwd: keep the name after ':'
        return {name.rsplit("dvc.yaml:", 1)[-1] for name in dvc_repo.status()}


def test_worker_count_changes_nothing_and_prepare_output_is_byte_stable(repo):
    """prepare.workers cannot change the caches, so it is not tracked; and a forced prepare
    rerun writes byte-identical caches, so no training reruns after it."""
    set_param(repo, "prepare.workers", 1)
    assert changed_stages(repo) == set()
    out = sh(DVC + ["repro", "-f", "-s", "prepare"], repo).stdout
    assert ran(out) == {"prepare"}
    assert ran(sh(DVC + ["repro"], repo).stdout) == set()


def test_code_edits_rerun_exactly_the_stages_that_run_that_code(repo):
    everything = {"prepare", "summarize", "plot"} | stages("train") | stages("evaluate")
    trains, evaluates = stages("train"), stages("evaluate")
    for module, expected in (("hseg/plots.py", {"plot"}),
                             ("hseg/losses.py", trains),
                             ("hseg/inference.py", trains | evaluates),
                             ("hseg/summary.py", {"summarize"}),
                             ("hseg/tree.py", everything),
                             # each stage's settings checks are its own; the cache format is every stage's
                             # that reads the caches
                             ("hseg/settings/plot.py", {"plot"}),
                             ("hseg/settings/train.py", trains),
                             ("hseg/settings/evaluate.py", evaluates),
                             ("hseg/settings/data.py", {"prepare"}),
                             ("hseg/settings/study.py", trains | evaluates | {"summarize", "plot"}),
                             ("hseg/settings/base.py", everything),
                             ("hseg/cache.py", everything - {"summarize"}),
                             ("hseg/dataset.py", {"prepare"})):
        original = (repo / module).read_text()
        (repo / module).write_text(original + "\n# an edit\n")
        try:
            assert changed_stages(repo) == expected, module
        finally:
            (repo / module).write_text(original)
    assert changed_stages(repo) == set()


def edit_and_repro(repo, module: str) -> list[set[str]]:
    """The stages `dvc repro` runs after a comment line is added to ``module``, then after it is taken
    out again; afterwards nothing is left to run."""
    path = repo / module
    original = path.read_text()
    path.write_text(original + "\n# a comment: the code does the same\n")
    try:
        runs = [ran(sh(DVC + ["repro"], repo).stdout)]
    finally:
        path.write_text(original)
    runs.append(ran(sh(DVC + ["repro"], repo).stdout))
    assert changed_stages(repo) == set()
    return runs


def test_editing_the_plot_settings_module_reruns_only_plot(repo):
    assert edit_and_repro(repo, "hseg/settings/plot.py") == [{"plot"}, {"plot"}]


def test_editing_the_dataset_code_reruns_prepare_and_nothing_after_it_when_the_caches_do_not_change(repo):
    """hseg/dataset.py is prepare's (decoding) alone: train, evaluate and plot read the caches through
    hseg/cache.py. prepare reruns; its outputs come out byte-identical, so DVC runs nothing downstream."""
    caches = {f: (repo / "data" / "prepared" / f).read_bytes() for f in ("train.pt", "val.pt")}
    edited, restored = edit_and_repro(repo, "hseg/dataset.py")
    assert edited == {"prepare"}
    assert restored <= {"prepare"}  # back to a state DVC's run-cache knows: it may restore the outputs instead
    assert {f: (repo / "data" / "prepared" / f).read_bytes() for f in caches} == caches


def test_metrics_show_and_plots_diff(repo):
    shown = sh(DVC + ["metrics", "show"], repo).stdout
    for v in RUNS:
        assert f"metrics/runs/{v}.json" in shown
    assert "miou2" in shown and f"dvclive/{RUNS[0]}/metrics.json" in shown and "metrics/summary.json" in shown
    diff = sh(DVC + ["plots", "diff", "HEAD", "--json"], repo)
    data = json.loads(diff.stdout)["data"]
    overlay = "val mIoU at the leaf level per epoch"
    assert overlay in data and "train loss per epoch" in data
    assert any("dvclive/" in plot_id for plot_id in data)  # dvclive's per-variant curves
    revisions = {rev for plot in data[overlay] for rev in plot["revisions"]}
    assert revisions == {"HEAD", "workspace"}


def test_a_trained_model_is_an_artifact_another_project_can_get(repo, tmp_path):
    remote = tmp_path / "remote"
    sh(DVC + ["remote", "add", "-d", "mine", str(remote)], repo)
    commit(repo, "results and a remote")
    sh(DVC + ["push", "-q"], repo)
    # register a version in the model registry's (GTO's) tag format
    sh(["git", "tag", "-a", f"{VARIANTS[0]}@v1.0.0", "-m", "first model"], repo)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sh(DVC + ["artifacts", "get", str(repo), VARIANTS[0], "-o", "model.pt"], elsewhere)
    assert (elsewhere / "model.pt").read_bytes() == (repo / "models" / f"{RUNS[0]}.pt").read_bytes()


def test_plots_show_writes_an_html_report_with_curves_and_figures(repo):
    out = repo / "report"
    sh(DVC + ["plots", "show", "-o", str(out)], repo)
    html = (out / "index.html").read_text()
    # one vega-lite spec per chart (rendered by vega-embed in the browser) and the PNG figures
    assert html.count("vegaEmbed(") >= 3
    assert "val_miou_leaf" in html and "dvclive" in html
    for v in RUNS:
        assert f"predictions_{v}.png" in html and f"confusion_{v}.png" in html
    assert "miou_by_level.png" in html and "time_to_accuracy.png" in html
    images = list((out / "static").glob("*.png"))
    assert len(images) >= 2 * len(VARIANTS) + 2


TWO_LEVELS = {"body": ["head", "torso", "up_hand", "low_hand", "up_leg", "low_leg"]}
FOUR_LEVELS = {"body": {"upper_body": {"head": None, "torso": None, "arm": ["up_hand", "low_hand"]},
                        "lower_body": {"leg": ["up_leg", "low_leg"]}}}


@pytest.mark.parametrize("spec, level_names", [
    (TWO_LEVELS, [["bg", "body"], ["bg", "head", "torso", "up_hand", "low_hand", "up_leg", "low_leg"]]),
    (FOUR_LEVELS, [["bg", "body"], ["bg", "upper_body", "lower_body"], ["bg", "head", "torso", "arm", "leg"],
                   ["bg", "head", "torso", "up_hand", "low_hand", "up_leg", "low_leg"]]),
], ids=["two-levels", "four-levels"])
def test_any_tree_depth_end_to_end(unet_repo, spec, level_names):
    """prepare, train, evaluate, plot, predict and report with a 2- and a 4-level tree: every
    level is scored and reported, nothing assumes three."""
    repo = unet_repo
    set_param(repo, "classes.tree", spec)
    sh(DVC + ["repro"], repo)
    variant = f"unet-resnet34-scratch-s{SEED}"
    depth = len(level_names)
    metrics = json.loads((repo / "metrics" / "runs" / f"{variant}.json").read_text())
    assert [list(metrics[f"iou{k}"]) for k in range(depth)] == level_names
    assert f"miou{depth}" not in metrics
    header = list(read_history(repo / "dvclive" / variant).columns)
    assert [c for c in header if c.startswith("val_miou")] == [f"val_miou{k}" for k in range(depth)]
    live = json.loads((repo / "dvclive" / variant / "metrics.json").read_text())
    assert sorted(live["val"]) == ["loss"] + [f"miou{k}" for k in range(depth)]
    val_curves = (repo / "plots" / "curves" / "val.csv").read_text().splitlines()[0].split(",")
    assert f"val_miou{depth - 1}" in val_curves and "val_miou_leaf" in val_curves

    report = sh([sys.executable, "-m", "hseg", "report"], repo).stdout
    assert all(f"mIoU^{k} (" in report for k in range(depth)) and f"mIoU^{depth} " not in report
    assert f"| {variant.removesuffix(f'-s{SEED}')} | 1 |" in report   # the epochs, from metrics/summary.json
    assert "arm" in report if depth == 4 else "head" in report

    image = next((repo / "data" / "pascal-part" / "JPEGImages").glob("*.jpg"))
    sh([sys.executable, "-m", "hseg", "predict", "--run", variant, "--no-progress", "-o", "pred", str(image)], repo)
    assert sorted(p.name for p in (repo / "pred").iterdir()) == sorted(
        [f"{image.stem}.png"] + [f"{image.stem}_level{k}.png" for k in range(depth)])

    for command in (["plots", "show", "--json"], ["metrics", "show"]):
        done = sh(DVC + command, repo)
        assert "failed to load" not in (done.stdout + done.stderr).lower(), done.stderr
    shown = json.loads(sh(DVC + ["plots", "show", "--json"], repo).stdout)["data"]
    assert "val mIoU at the leaf level per epoch" in shown


def test_a_queued_sweep_trains_concurrently_and_one_repro_gathers_the_study(unet_repo):
    """A study over the workers of one machine (docs/gpus.md: one worker per GPU, each training claiming its
    own, tests/test_gpus.py) in two commands: one queued sweep, one experiment per value of
    `-S 'study.archs=[unet],[deeplabv3plus]'`, and `dvc queue start -j 2`, each experiment in its own copy of
    the workspace; then one `dvc repro` with the whole study's params restores every train and evaluate
    stage from the run cache the workers filled, and runs only summarize and plot."""
    import time
    repo = unet_repo   # committed: the queue runs each experiment from a commit
    sh(DVC + ["exp", "run", "--queue", "-S", "study.archs=[unet],[deeplabv3plus]"], repo)
    # the workers outlive `dvc queue start`: give it no pipes to hold open, so it returns at once
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(repo),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    subprocess.run(DVC + ["queue", "start", "-j", "2"], cwd=repo, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True, timeout=120)
    most_running, deadline = 0, time.monotonic() + 540
    while time.monotonic() < deadline:
        status = sh(DVC + ["queue", "status"], repo).stdout
        most_running = max(most_running, status.count("Running"))
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    sh(DVC + ["queue", "stop"], repo, check=False)
    assert "Failed" not in status, status
    assert most_running == 2
    shown = json.loads(sh(DVC + ["exp", "show", "--json"], repo).stdout)
    found = {}
    for commit_entry in shown:
        for exp in commit_entry.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data") or {}
                archs = data["params"]["params.yaml"]["data"]["study"]["archs"]
                found[tuple(archs)] = {m: data["metrics"][m]["data"] for m in data.get("metrics") or {}
                                       if m.startswith("metrics/runs/")}
    assert set(found) == {("unet",), ("deeplabv3plus",)}
    for arch in ("unet", "deeplabv3plus"):
        assert list(found[(arch,)]) == [f"metrics/runs/{arch}-resnet34-scratch-s{SEED}.json"]

    set_param(repo, "study.archs", ["unet", "deeplabv3plus"])   # the whole study, as the profile sets it
    out = sh(DVC + ["repro"], repo).stdout
    assert ran(out) == {"summarize", "plot"}, out                # no train@ or evaluate@ ran here
    for run in RUNS:   # the scores (`dvc exp show` leaves out list values, e.g. the CPU's ISA flags)
        kept = found[(run.split("-")[0],)][f"metrics/runs/{run}.json"]
        gathered = json.loads((repo / "metrics" / "runs" / f"{run}.json").read_text())
        scores = [k for k in gathered if k.startswith(("miou", "iou"))]
        assert len(scores) >= 4 and {k: gathered[k] for k in scores} == {k: kept[k] for k in scores}
