"""tools/collect_runs.py: one-seed DVC experiments of one recipe gathered into one results folder, with the
summary over their seeds as the summarize stage computes it; other recipes and unknown names refused."""

import json
import subprocess

import pytest
import yaml

from hseg.errors import UserError
from tests.conftest import load_tool

RUN = "unet-resnet34-scratch"


def git(repo, *args):
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


def experiment(repo, name, seed, miou2, crop=0.0):
    """A commit like `dvc exp run` makes, on its own ref refs/exps/xx/<base>/<name>, from the main branch."""
    params = {"study": {"archs": ["unet"], "encoders": ["resnet34"], "inits": ["scratch"], "seeds": [seed]},
              "train": {"epochs": 20, "augment": {"person_crop": crop}}}
    metrics = {"miou0": 0.6, "miou1": 0.45, "miou2": miou2, "iou0": {"bg": 0.9, "body": 0.3},
               "iou1": {"bg": 0.9, "upper_body": 0.25, "lower_body": 0.2},
               "iou2": {"bg": 0.9, "head": miou2, "torso": miou2}, "epochs": 20}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    (repo / "dvc.lock").write_text(f"schema: '2.0'\nseed: {seed}\n")
    (repo / "metrics" / "runs").mkdir(parents=True, exist_ok=True)
    (repo / "metrics" / "runs" / f"{RUN}-s{seed}.json").write_text(json.dumps(metrics))
    live = repo / "dvclive" / f"{RUN}-s{seed}"
    live.mkdir(parents=True, exist_ok=True)
    (live / "metrics.json").write_text(json.dumps({"val": {"miou2": miou2 - 0.02}}))
    base = git(repo, "rev-parse", "main")
    git(repo, "add", "-A", "--", ".", ":!results")     # an experiment commits no results folder of ours
    tree = git(repo, "write-tree")
    commit = git(repo, "commit-tree", tree, "-p", base, "-m", f"dvc: commit experiment {name}")
    git(repo, "update-ref", f"refs/exps/{base[:2]}/{base[2:]}/{name}", commit)
    git(repo, "reset", "-q", "--hard", "main")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "README.md").write_text("x\n")
    git(tmp_path, "add", "README.md")
    git(tmp_path, "commit", "-qm", "main")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_seeds_of_one_recipe_become_one_folder_with_their_summary(repo, capsys):
    tool = load_tool("collect_runs")
    experiment(repo, "crop-s42", 42, 0.30)
    experiment(repo, "crop-s43", 43, 0.34)
    tool.main(tool.parser().parse_args(["results/crop", "crop-s42", "crop-s43"]))
    out = repo / "results" / "crop"

    summary = json.loads((out / "summary.json").read_text())
    stats = summary["variants"][RUN]["miou2"]
    # 0.30 and 0.34: mean 0.32, sd sqrt((0.02^2 + 0.02^2) / 1) = 0.028284
    assert stats["mean"] == pytest.approx(0.32) and stats["sd"] == pytest.approx(0.0282843, abs=1e-6)
    assert summary["seeds"] == [42, 43]
    assert yaml.safe_load((out / "params.yaml").read_text())["study"]["seeds"] == [42, 43]
    assert json.loads((out / "metrics" / f"{RUN}-s43.json").read_text())["miou2"] == 0.34
    live = json.loads((out / "dvclive" / f"{RUN}-s42" / "metrics.json").read_text())
    assert live["val"]["miou2"] == pytest.approx(0.28)
    assert (out / "locks" / "crop-s43.lock").read_text() == "schema: '2.0'\nseed: 43\n"
    records = json.loads((out / "experiments.json").read_text())
    assert [(r["experiment"], r["ran_from"], r["seeds"]) for r in records] == [
        ("crop-s42", git(repo, "rev-parse", "main"), [42]), ("crop-s43", git(repo, "rev-parse", "main"), [43])]
    assert "miou2 0.3200 +- 0.0283" in capsys.readouterr().out

    experiment(repo, "crop-s44", 44, 0.32)        # a seed that lands later: collected again, the folder replaced
    (out / "README.md").write_text("by hand\n")   # ... but for what the tool did not write
    tool.main(tool.parser().parse_args(["results/crop", "crop-s42", "crop-s43", "crop-s44"]))
    assert json.loads((out / "summary.json").read_text())["variants"][RUN]["miou2"]["n"] == 3
    assert (out / "README.md").read_text() == "by hand\n"


def test_another_recipe_an_unknown_name_or_a_foreign_folder_is_refused_and_nothing_is_written(repo):
    tool = load_tool("collect_runs")
    experiment(repo, "base-s42", 42, 0.30)
    experiment(repo, "crop-s43", 43, 0.34, crop=0.5)
    with pytest.raises(UserError, match=r"'crop-s43' differs from 'base-s42' in train.augment.person_crop: 0.5"):
        tool.collect(["base-s42", "crop-s43"], repo / "results" / "mixed")
    with pytest.raises(UserError, match="experiment 'nope': no ref under refs/exps"):
        tool.collect(["base-s42", "nope"], repo / "results" / "mixed")
    with pytest.raises(UserError, match="seed 42 is already"):
        tool.collect(["base-s42", "base-s42"], repo / "results" / "mixed")
    (repo / "results" / "mine").mkdir(parents=True)
    with pytest.raises(UserError, match="was not written by this tool"):
        tool.collect(["base-s42"], repo / "results" / "mine")
    assert sorted(p.name for p in (repo / "results").iterdir()) == ["mine"]   # no half-written folder left
