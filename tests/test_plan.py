"""`python -m hseg plan`: the arithmetic against hand-computed plans, the refusal of a budget too small,
the command and JSON it writes (with the measuring stubbed), a tiny real measurement, and
benchmarks/plan_accuracy.py's comparison."""
import json
import re
import sys
from fractions import Fraction

import pytest
import torch

from hseg import exp, plan
from hseg.errors import UserError
from hseg.schedule import LrFactor
from hseg.settings.base import deep_merge
from hseg.settings.train import train_config
from tests.conftest import ROOT

HOUR_LIKE = {"prepare": {"size": 224},
             "study": {"archs": ["unet"], "encoders": ["resnet34"], "inits": ["scratch"], "seeds": [42]},
             "train": {"epochs": 20, "progressive": [[8, 96], [4, 128], [3, 160], [1, 192]], "val_every": 20}}
SHARES = tuple(map(Fraction, (8, 4, 3, 1, 4)))


def costs(epoch_s, validation_s=5.0, save_s=1.0, evaluate_s=30.0, fixed_s=40.0) -> plan.Costs:
    return plan.Costs(tuple(epoch_s), validation_s, save_s, evaluate_s, fixed_s)


@pytest.fixture
def hour_like(params):
    return deep_merge(params, HOUR_LIKE)


# --- the arithmetic -------------------------------------------------------------------------------

@pytest.mark.parametrize("total, shares, expected", [
    (20, SHARES, (8, 4, 3, 1, 4)),            # the shares' own total gives them back
    (25, SHARES, (10, 5, 4, 1, 5)),           # ends at 10, 15, 18.75 -> 19, 20, 25
    (1, SHARES, (0, 0, 0, 0, 1)),             # one epoch: at the full side
    (3, (Fraction(1), Fraction(1)), (2, 1)),  # 1.5 rounds half up
    (2, (Fraction(1), Fraction(0)), (1, 1)),  # a share of 0 for the full side still leaves it one epoch
])
def test_split_epochs_by_rounded_running_shares(total, shares, expected):
    assert plan.split_epochs(total, shares) == expected


@pytest.mark.parametrize("epochs, val_every, expected", [(20, 20, 1), (7, 3, 3), (6, 3, 2), (1, 5, 1)])
def test_validations_every_nth_epoch_and_the_last(epochs, val_every, expected):
    assert plan.validations(epochs, val_every) == expected


def test_predicted_seconds_by_hand():
    # 2 x 10 + 3 x 20 training, ceil(5 / 2) = 3 validations x 5, 5 saves x 1, evaluation 30, fixed 40
    assert plan.predicted_seconds((2, 3), costs((10, 20)), 2) == 80 + 15 + 5 + 30 + 40


def test_logged_seconds_add_up_to_the_prediction_less_what_is_not_logged():
    c = costs((10, 20))
    logged = plan.logged_epoch_seconds((2, 1), c.epoch_s, c.validation_s, 2)
    assert logged == [10, 15, 25]  # epoch 2 validates (every 2nd), epoch 3 as the last
    assert sum(logged) + 3 * c.save_s + c.evaluate_s + c.fixed_s == plan.predicted_seconds((2, 1), c, 2)


def test_choose_plan_fills_the_budget_less_the_margin_by_hand():
    # 540 s available; one validation; E = 29 -> (15, 14): 150 + 280 + 5 + 29 + 70 = 534; E = 30 -> 555
    chosen = plan.choose_plan(costs((10, 20)), 600, 0.1, (Fraction(1), Fraction(1)), None)
    assert (chosen.epochs, chosen.val_every, chosen.seconds) == ((15, 14), 29, 534)
    # every 2nd epoch validated: E = 25 -> (13, 12): 130 + 240 + 13 x 5 + 25 + 70 = 530; E = 26 -> 551
    chosen = plan.choose_plan(costs((10, 20)), 600, 0.1, (Fraction(1), Fraction(1)), 2)
    assert (chosen.epochs, chosen.val_every, chosen.seconds) == ((13, 12), 2, 530)


def test_choose_plan_looks_past_a_total_that_does_not_fit():
    """Rounding can make more epochs cheaper: 4 epochs split (1, 2, 1) cost 202 s, 5 split (2, 1, 2) 104 s."""
    shares = (Fraction(1),) * 3
    assert plan.split_epochs(4, shares) == (1, 2, 1) and plan.split_epochs(5, shares) == (2, 1, 2)
    chosen = plan.choose_plan(costs((1, 100, 1), 0, 0, 0, 0), 150, 0, shares, None)
    assert (chosen.epochs, chosen.seconds) == ((2, 1, 2), 104)


def test_a_budget_too_small_is_refused_naming_the_minutes_it_needs():
    # the smallest plan, 2 epochs (1, 1): 600 + 1200 + 10 + 2 x 2 + 50 + 100 = 1964 s; / 0.9 = 36.37 minutes
    c = costs((600, 1200), validation_s=10, save_s=2, evaluate_s=50, fixed_s=100)
    with pytest.raises(plan.BudgetTooSmall) as refused:
        plan.choose_plan(c, 15 * 60, 0.1, (Fraction(1), Fraction(1)), None, fewest=2)
    assert refused.value.minimum_minutes == pytest.approx(1964 / 0.9 / 60)
    assert "at least 36.4 minutes (--minutes 37 or more)" in str(refused.value)
    assert isinstance(refused.value, UserError)  # one line and exit status 2 from the command
    # 37 minutes hold it
    assert plan.choose_plan(c, 37 * 60, 0.1, (Fraction(1), Fraction(1)), None, fewest=2).epochs == (1, 1)


def test_warmup_cosine_needs_an_epoch_after_its_warmup():
    assert [plan.min_epochs("warmup_cosine", w) for w in (0, 0.5, 1, 2.5)] == [1, 1, 2, 3]


@pytest.mark.parametrize("text, expected", [("10%", 0.1), ("0.05", 0.05), ("0", 0.0)])
def test_margin_as_a_fraction_or_a_percentage(text, expected):
    assert plan.parse_margin(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["1", "100%", "-0.1", "ten"])
def test_margin_outside_0_to_1_is_refused(text):
    with pytest.raises(Exception, match="margin|fraction"):
        plan.parse_margin(text)


def test_shares_are_exact_and_checked():
    assert plan.parse_shares("8,4,3,1,4") == SHARES and plan.parse_shares("0.5, 0.5") == (Fraction(1, 2),) * 2
    for bad in ("1,-1", "0,0", "a,b"):
        with pytest.raises(UserError, match="--shares"):
            plan.parse_shares(bad)


# --- the params and the command ------------------------------------------------------------------------

def test_the_recipe_gives_the_sides_and_their_shares(hour_like):
    recipe = plan.read_recipe(hour_like, None)
    assert recipe.sides == (96, 128, 160, 192, 224) and recipe.shares == SHARES
    assert recipe.val_every is None and recipe.fewest == 2  # validates the last epoch only; 1 warm-up epoch
    with pytest.raises(UserError, match="2 share.*5 side"):
        plan.read_recipe(hour_like, (Fraction(1), Fraction(1)))


def test_the_recipe_refuses_what_a_plan_cannot_keep(hour_like):
    restarts = deep_merge(hour_like, {"train": {"scheduler": {"name": "cosine_restarts"}}})
    with pytest.raises(UserError, match="warmup_cosine"):
        plan.read_recipe(restarts, None)
    overridden = deep_merge(hour_like, {"variants": {"unet-resnet34-scratch": {"epochs": 5}}})
    with pytest.raises(UserError, match="variants.unet-resnet34-scratch overrides train.epochs"):
        plan.read_recipe(overridden, None)


def test_the_planned_settings_run_the_plan_and_the_schedule_ends_at_its_last_step(hour_like):
    recipe = plan.read_recipe(hour_like, None)
    chosen = plan.Plan(plan.split_epochs(25, recipe.shares), 25, 0.0)
    settings = plan.plan_settings(chosen, recipe)
    assert settings == ["train.epochs=25", "train.progressive=[[10, 96], [5, 128], [4, 160], [1, 192]]",
                        "train.val_every=25"]
    planned = exp.apply_settings(hour_like, settings)
    cfg = train_config(planned, "unet-resnet34-scratch", 42)
    assert cfg.epochs == 25 and cfg.progressive == ((10, 96), (5, 128), (4, 160), (1, 192))
    steps = 2532 // cfg.batch_size
    factor = LrFactor(cfg, steps)
    floor = cfg.scheduler.eta_min / cfg.lr
    assert factor(25 * steps - 1) == pytest.approx(floor) and factor(25 * steps - 2) > floor + 1e-9
    # a side left no epochs drops out of train.progressive
    assert plan.plan_settings(plan.Plan((0, 0, 0, 0, 2), 2, 0.0), recipe)[1] == "train.progressive=[]"


def test_the_command_keeps_the_users_settings_but_those_the_plan_sets():
    command = plan.run_command("hour", ["train.lr=0.002", "train.epochs=3"], ["train.epochs=25"])
    assert command == ["python", "-m", "hseg", "exp", "hour", "-S", "train.lr=0.002", "-S", "train.epochs=25"]


def test_split_sizes_from_the_id_files_or_pascal_parts(params, dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where data/pascal-part holds no dataset (the repository's may)
    counts, source = plan.split_sizes(params)
    assert counts == {"train": 2532, "dev": 294, "val": 707} and "Pascal-Part" in source
    with pytest.raises(UserError, match="dev_fraction = 0.2"):
        plan.split_sizes(deep_merge(params, {"data": {"dev_fraction": 0.2}}))
    here = deep_merge(params, {"data": {"root": str(dataset), "dev_fraction": 0.0}})
    assert plan.split_sizes(here)[0] == {"train": 6, "dev": 0, "val": 3}


def test_prepare_from_the_documented_constant_without_the_dataset(params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seconds, how = plan.prepare_seconds(params, {"train": 2532, "dev": 294, "val": 707})
    assert seconds == pytest.approx(17.2) and how.startswith("documented")  # the 3,533 images it was timed on


def test_cache_built_at_this_size_and_dev_split(params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not plan.cache_built(params)
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    for name in ("train.pt", "val.pt"):
        (tmp_path / "data" / "prepared" / name).write_bytes(b"")
    (tmp_path / "data" / "prepared" / "summary.json").write_text(json.dumps({"size": 96, "dev_fraction": 0.1}))
    assert plan.cache_built(deep_merge(params, {"prepare": {"size": 96}, "data": {"dev_fraction": 0.1}}))
    assert not plan.cache_built(deep_merge(params, {"prepare": {"size": 224}, "data": {"dev_fraction": 0.1}}))


# --- the command, measuring stubbed ---------------------------------------------------------------------

FAKE_RUN = {"precision": "bf16", "device": "cpu", "steps_per_epoch": 158, "step_s": [0.1] * 5,
            "epoch_s": [10.0, 20.0, 30.0, 40.0, 60.0], "validation_s": 6.0, "validation_split": "dev", "save_s": 1.0,
            "evaluate_s": 30.0}
FAKE_OVERHEADS = {"train start": {"count": 1, "seconds": 10.0, "how": "stub"}}


@pytest.fixture
def stubbed(hour_like, tmp_path, monkeypatch):
    """plan.run with the params given and the measuring replaced by fixed seconds (FAKE_RUN, FAKE_OVERHEADS)."""
    monkeypatch.chdir(tmp_path)
    timed = []
    monkeypatch.setattr(exp, "profile_params", lambda profile, settings=(): (hour_like, "the test's params"))
    monkeypatch.setattr(plan, "measure_variant", lambda *a, **k: timed.append(a) or dict(FAKE_RUN))
    monkeypatch.setattr(plan, "measure_overheads", lambda runs, prepare: dict(FAKE_OVERHEADS))
    monkeypatch.setattr(plan, "cache_built", lambda params: True)
    return timed


def test_the_command_prints_and_writes_the_hand_computed_plan(stubbed, tmp_path, capsys):
    # 1,080 s available; one validation (6), a save per epoch, evaluation 30, fixed 10:
    # E = 37 -> (15, 7, 6, 2, 7): 150 + 140 + 180 + 80 + 420 + 6 + 37 + 40 = 1,053; E = 38 -> (15, 8, 6, 1, 8): 1,094
    args = plan.parser().parse_args(["hour", "--minutes", "20", "--json", str(tmp_path / "out" / "plan.json")])
    assert plan.run(args) == 0
    assert len(stubbed) == 1
    out = capsys.readouterr().out
    command = ("python -m hseg exp hour -S train.epochs=37 -S 'train.progressive=[[15, 96], [7, 128], [6, 160], "
               "[2, 192]]' -S train.val_every=37")
    assert "run it:   " + command in out
    assert re.search(r"predicted total +17\.55 of 20 minutes \(at most 18\.0 with the 10% margin\)", out)
    record = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert record["plan"] == {"sides": [96, 128, 160, 192, 224], "epochs": [15, 7, 6, 2, 7], "total_epochs": 37,
                              "val_every": 37, "validations": 1}
    assert record["predicted"]["total_s"] == pytest.approx(1053) and record["command"] == command
    assert record["predicted"]["train_s"] == pytest.approx(970) and record["predicted"]["fixed_s"] == 10
    assert record["machine"]["cpu"] and record["measured"]["variants"]["unet-resnet34-scratch"] == FAKE_RUN


def test_a_budget_too_small_is_refused_after_measuring(stubbed):
    # the smallest plan, 2 epochs (1 at 96 px, 1 at 224): 10 + 60 + 6 + 2 + 30 + 10 = 118 s; / 0.9 = 2.19 minutes
    args = plan.parser().parse_args(["hour", "--minutes", "2"])
    with pytest.raises(plan.BudgetTooSmall, match=r"at least 2\.2 minutes \(--minutes 3 or more\)"):
        plan.run(args)
    assert len(stubbed) == 1


@pytest.mark.parametrize("argv, message", [(["--minutes", "0"], "--minutes 0"), (["--minutes", "-5"], "--minutes -5"),
                                           (["--minutes", "nan"], "--minutes nan"), (["--shares", "1,-1"], "--shares"),
                                           (["--shares", "1,1"], "2 share"), (["--steps", "0"], "--steps")])
def test_bad_arguments_are_refused_before_anything_is_timed(stubbed, argv, message):
    with pytest.raises(UserError, match=message):
        plan.run(plan.parser().parse_args(["hour", *argv]))
    assert stubbed == []


# --- measuring, tiny -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_measure_variant_times_each_side_validation_save_and_evaluation(params, tree, tmp_path):
    params = deep_merge(params, {"train": {"batch_size": 2, "epochs": 2, "progressive": [[1, 32]], "precision": "fp32"},
                                 "evaluate": {"batch_size": 2, "precision": "fp32"}})
    cfg = train_config(params, "unet-resnet18-scratch", 42)
    from hseg.settings.evaluate import evaluate_settings
    said = []
    measured = plan.measure_variant(cfg, tree, evaluate_settings(params), [32, 0], 64,
                                    {"train": 9, "dev": 4, "val": 3}, steps=2, sample=2, save_dir=tmp_path,
                                    say=said.append)
    assert measured["steps_per_epoch"] == 4  # 9 // 2
    assert len(measured["step_s"]) == 2 and all(s > 0 for s in measured["step_s"])
    assert measured["epoch_s"] == [4 * s for s in measured["step_s"]]
    assert measured["validation_split"] == "dev" and measured["validation_s"] > 0
    assert measured["save_s"] > 0 and measured["evaluate_s"] > 0
    saved = torch.load(tmp_path / "resume.pt", weights_only=False)
    assert saved["fingerprint"] == "plan" and saved["optimizer"]["state"]  # the state after real steps
    assert any("at 32 px" in line for line in said) and any("at 64 px" in line for line in said)


@pytest.mark.slow
def test_overheads_time_each_stage_start_once_and_count_it_per_run(monkeypatch):
    monkeypatch.chdir(ROOT)
    said = []
    overheads = plan.measure_overheads(3, (12.5, "documented"), say=said.append)
    assert {name: o["count"] for name, o in overheads.items()} == {
        "train start": 3, "evaluate start": 3, "summarize start": 1, "plot start": 1, "dvc start": 1, "prepare": 1}
    assert all(o["seconds"] > 0 for o in overheads.values()) and overheads["prepare"]["seconds"] == 12.5
    assert len(said) == 6


# --- benchmarks/plan_accuracy.py ---------------------------------------------------------------------------

@pytest.fixture
def accuracy():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import plan_accuracy
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return plan_accuracy


def record_of(epochs, sides, val_every, runs_seeds=(42,)):
    variant = {"epoch_s": [10.0, 20.0], "validation_s": 5.0}
    return {"plan": {"sides": sides, "epochs": epochs, "total_epochs": sum(epochs), "val_every": val_every},
            "measured": {"variants": {"unet-resnet34-scratch": variant}},
            "runs": {"variants": ["unet-resnet34-scratch"], "seeds": list(runs_seeds)},
            "predicted": {"total_s": 200.0}, "command": "python -m hseg exp hour", "budget_minutes": 5,
            "machine": {"cpu": "a CPU"}, "date": "2026-12-04", "commit": None}


def write_seconds(folder, seconds):
    tsv = folder / "plots" / "metrics" / "train" / "seconds.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("step\tseconds\n" + "".join(f"{e}\t{s}\n" for e, s in enumerate(seconds, start=1)))


def test_plan_accuracy_compares_each_side_and_the_total_by_hand(accuracy, tmp_path):
    record = record_of([2, 1], [96, 224], 3)
    write_seconds(tmp_path / "unet-resnet34-scratch-s42", [12, 11, 30])
    rows = accuracy.compare(record, accuracy.logged_seconds(record, tmp_path), 240.0)
    # predicted per epoch: 10, 10, 20 + 5 (the last validates)
    assert [(r["what"], r["predicted_s"], r["measured_s"]) for r in rows] == [
        ("96 px", 20, 23), ("224 px", 25, 30), ("training as logged", 45, 53),
        ("the rest (saves, evaluation, overheads)", 155, 187), ("total (wall)", 200, 240)]
    assert "1.200" in accuracy.table(record, rows).splitlines()[-1]  # the wall: 240 / 200
    # two seeds sum; wall alone leaves the per-side rows unmeasured
    rows = accuracy.compare(record_of([2, 1], [96, 224], 3, (42, 43)), None, 300.0)
    assert rows[0]["predicted_s"] == 40 and rows[0]["measured_s"] is None and rows[-1]["measured_s"] == 300


def test_plan_accuracy_refuses_a_run_with_other_epochs(accuracy, tmp_path):
    write_seconds(tmp_path / "unet-resnet34-scratch-s42", [12, 11])
    with pytest.raises(UserError, match="the plan has 3"):
        accuracy.logged_seconds(record_of([2, 1], [96, 224], 3), tmp_path)


def test_calibration_plans_runs_the_planned_command_and_compares(accuracy, tmp_path, monkeypatch):
    """--calibrate, with the plan and the run stubbed: it runs the plan's own command, reads the run's
    dvclive seconds and writes the comparison with the logs next to the plan."""
    monkeypatch.chdir(tmp_path)
    record = dict(record_of([2, 1], [96, 224], 3), command="python -m hseg exp hour -S train.epochs=3")
    ran = []

    def fake_run(command, **kwargs):
        ran.append(command)
        if "plan" in command:
            out = command[command.index("--json") + 1]
            with open(out, "w") as f:
                json.dump(record, f)
        else:
            write_seconds(tmp_path / "dvclive" / "unet-resnet34-scratch-s42", [12, 11, 30])
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(accuracy.subprocess, "run", fake_run)
    args = accuracy.parser().parse_args(["--calibrate", "hour", "--minutes", "30", "-S", "train.lr=0.002",
                                         "--out", "calib"])
    accuracy.main(args)
    assert ran[0][1:] == ["-m", "hseg", "plan", "hour", "--minutes", "30.0", "--json", "calib/plan.json",
                          "-Strain.lr=0.002"]
    assert ran[1] == [sys.executable, "-m", "hseg", "exp", "hour", "-S", "train.epochs=3"]
    result = json.loads((tmp_path / "calib" / "accuracy.json").read_text())
    assert [(r["what"], r["predicted_s"], r["measured_s"]) for r in result["rows"][:3]] == [
        ("96 px", 20, 23), ("224 px", 25, 30), ("training as logged", 45, 53)]
    assert result["wall_s"] > 0 and (tmp_path / "calib" / "dvclive" / "unet-resnet34-scratch-s42").is_dir()
