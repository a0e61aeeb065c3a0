"""Named profiles (profiles/*.yaml) and `python -m hseg exp`: every profile yields params the
checks accept, the original recipe is exact, and a profile's params do not depend on what an
earlier experiment left in the workspace."""
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hseg import exp
from hseg.errors import UserError
from hseg.settings.base import deep_merge, load_params
from hseg.settings.data import data_settings, prepare_settings
from hseg.settings.evaluate import evaluate_settings
from hseg.settings.plot import plot_settings
from hseg.settings.study import study_settings, study_variants
from hseg.settings.train import train_config
from hseg.train import check_batching


def dev_fraction(params: dict) -> float:
    return data_settings(params).dev_fraction


def study_seeds(params: dict) -> list[int]:
    return study_settings(params).seeds

ROOT = Path(__file__).resolve().parent.parent
PROFILES = exp.profile_names(ROOT / "profiles")


def profile_params(params: dict, name: str) -> dict:
    profile = exp.load_profile(name, ROOT / "profiles")
    exp.check_keys(profile, params, name)
    return deep_merge(params, profile)


def via_dvc(settings: list[str], start: dict, folder: Path) -> dict:
    """params after DVC's own `-S` handling (Hydra's grammar) of ``settings`` applied to ``start``."""
    from dvc.utils.hydra import apply_overrides
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(start, sort_keys=False))
    apply_overrides(str(path), settings)
    return load_params(path)   # as the stages read it


def test_the_four_profiles_exist():
    assert set(PROFILES) >= {"quick", "hour", "original", "full"}


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_yields_params_the_checks_accept(params, name):
    params = profile_params(params, name)
    dev_fraction(params)
    prepare_settings(params), evaluate_settings(params), plot_settings(params)
    for variant in study_variants(params):
        for seed in study_seeds(params):
            cfg = train_config(params, variant, seed)       # every value the train stage reads
            check_batching(cfg, cfg.processes, 2532)          # the real train split minus dev


def test_quick_is_one_seed_of_the_committed_study_with_equal_budgets(params):
    quick = profile_params(params, "quick")
    assert study_seeds(quick) == [study_seeds(params)[0]] and study_variants(quick) == study_variants(params)
    assert all(v.endswith("-scratch") for v in study_variants(params)) and len(study_variants(params)) == 4
    assert not any(params["variants"].values())                      # equal budgets: no per-variant tuning
    assert dev_fraction(params) > 0 and study_seeds(params)[0] == 42   # seeds 43, 44 land as their own runs


@pytest.mark.parametrize("name", ["quick", "hour"])
def test_the_cpu_profiles_train_whole_96px_images_from_scratch_and_score_with_flips(params, name):
    params = profile_params(params, name)
    variants = study_variants(params)
    assert variants and all(v.endswith("-scratch") for v in variants)
    for variant in variants:
        cfg = train_config(params, variant, 42)
        assert cfg.crop == 0 and cfg.class_weights == "inverse_sqrt" and cfg.augment.scale == (1.0, 1.0)
    assert evaluate_settings(params).flip_tta


def test_original_profile_is_exactly_the_original_studys_recipe(params):
    params = profile_params(params, "original")
    cfg = train_config(params, "unet-resnet34-scratch", 42)
    assert prepare_settings(params).size == 256 and dev_fraction(params) == 0
    assert (cfg.epochs, cfg.batch_size, cfg.crop, cfg.optimizer, cfg.lr, cfg.weight_decay) == (
        20, 16, 0, "adam", 1e-3, 0)
    assert tuple(cfg.scheduler.model_dump().values()) == ("cosine_restarts", 0, 10, 1e-6)
    assert cfg.head == "flat" and cfg.class_weights == "none" and cfg.level_weight == 0
    assert {k: w for k, w in cfg.loss_weights.model_dump().items() if w} == {"ce": 1.0}
    assert cfg.augment.model_dump() == dict(hflip=True, scale=(1.0, 1.0), shift=0, rotate=0, brightness=0, contrast=0,
                                            person_crop=0)
    assert not evaluate_settings(params).flip_tta and not evaluate_settings(params).tta_sides
    assert len(study_variants(params)) == 8


def test_a_profile_after_another_equals_the_profile_alone(params, tmp_path):
    """What `python -m hseg exp B` computes in a workspace that experiment A (plus a stray per-variant
    key) left behind gives, through DVC's -S handling, the same params as B from the committed file."""
    for first, second in (("hour", "quick"), ("original", "hour"), ("full", "original")):
        left = profile_params(params, first)
        left["variants"]["unet-resnet34-scratch"] = {"epochs": 9}         # what an old command left
        target = profile_params(params, second)
        after = via_dvc(exp.overrides_to(target, left), left, tmp_path)
        assert after == load_params(_dump(target, tmp_path / "alone.yaml")), (first, second)


def _dump(params: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_a_profile_key_params_yaml_lacks_is_refused(params):
    with pytest.raises(UserError, match=r"profiles/x.yaml.train: sets 'learning_rate', which params.yaml"):
        exp.check_keys({"train": {"learning_rate": 1}}, params, "profiles/x.yaml")
    exp.check_keys({"variants": {"unet-resnet34-scratch": {"lr": 1e-3}}}, params, "profiles/x.yaml")
    with pytest.raises(UserError, match="no .*profiles/nope.yaml; profiles are .*quick"):
        exp.load_profile("nope", ROOT / "profiles")


def test_overrides_set_changed_keys_add_new_ones_and_remove_stale_ones():
    target = {"a": {"b": 1, "c": [1, 2]}, "v": {"x": {}}}
    current = {"a": {"b": 2, "c": [1, 2], "d": "old"}, "v": {"x": {"lr": 1}}}
    assert sorted(exp.overrides_to(target, current)) == sorted(["a.b=1", "++v.x={}", "~a.d", "~v.x.lr"])


def test_exp_dry_run_prints_the_dvc_command_from_the_committed_params(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hseg", "exp", "hour", "--dry-run", "-S", "train.lr=0.002",
                           "-n", "h1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    command = proc.stdout.strip().splitlines()[-1]
    assert command.startswith("dvc exp run -n h1 -S ") and command.endswith("-S train.lr=0.002")
    assert "prepare.size=224" in command


def test_a_key_the_user_sets_is_set_once_by_the_users_value(tmp_path, monkeypatch):
    """`python -m hseg exp hour -S 'study.seeds=[43]'` passes one study.seeds (the user's), not the profile's
    [42] before it: a queued sweep over a key (`-S 'study.seeds=[42],[43]'`) must not meet a second value."""
    _committed_params_in(tmp_path, monkeypatch)
    command = exp.experiment_command("hour", ["study.seeds=[42],[43]", "++variants.x.lr=1"], True, None)
    keys = [s.lstrip("+~").partition("=")[0] for flag, s in zip(command, command[1:]) if flag == "-S"]
    assert keys.count("study.seeds") == 1 and "study.seeds=[42],[43]" in command
    assert "prepare.size=224" in command        # the profile's other settings stay


def test_a_new_encoder_gets_the_empty_variants_entry_dvc_yaml_reads(params, tmp_path, monkeypatch):
    """`python -m hseg exp hour -S 'study.encoders=[resnet101]'`: dvc.yaml's train stage depends on
    variants.<variant>, and DVC stops before training on a missing one, so the command adds it, once."""
    _committed_params_in(tmp_path, monkeypatch)
    assert "unet-resnet101-scratch" not in params["variants"]
    command = exp.experiment_command("hour", ["study.encoders=[resnet101,resnet34]"], True, None)
    settings = [s for flag, s in zip(command, command[1:]) if flag == "-S"]
    assert [s for s in settings if "variants" in s] == ["++variants.unet-resnet101-scratch={}"]
    after = via_dvc(settings, params, tmp_path)
    assert set(study_variants(after)) <= set(after["variants"]) and after["variants"]["unet-resnet101-scratch"] == {}

    given = exp.experiment_command("hour", ["study.encoders=[resnet101]", "++variants.unet-resnet101-scratch={}"],
                                   True, None)
    assert given.count("++variants.unet-resnet101-scratch={}") == 1         # the user's own, not a second
    assert not [s for s in exp.experiment_command("hour", [], True, None) if s.startswith("++variants")]


def test_the_hour_profile_is_the_recipe_its_committed_seeds_ran_and_its_plan(params, tmp_path):
    """results/hour-r18crop holds the `hour` profile's seeds 42, 43 and 44: the profile over params.yaml is
    exactly the params they ran but for the seeds (so `python -m hseg exp hour` reruns them), and it is the
    plan that folder's plan.json printed (its -S settings change nothing in it)."""
    folder = ROOT / "results" / "hour-r18crop"
    hour = profile_params(params, "hour")
    ran = load_params(folder / "params.yaml")
    assert study_seeds(ran) == [42, 43, 44]
    assert load_params(_dump(deep_merge(hour, {"study": {"seeds": [42, 43, 44]}}), tmp_path / "hour.yaml")) == ran
    words = shlex.split(json.loads((folder / "plan.json").read_text())["command"])
    assert words[:5] == ["python", "-m", "hseg", "exp", "hour"]
    planned = via_dvc([s for flag, s in zip(words, words[1:]) if flag == "-S"], hour, tmp_path)
    assert planned == load_params(_dump(hour, tmp_path / "hour.yaml"))


def _committed_params_in(folder: Path, monkeypatch) -> None:
    """A git checkout in ``folder`` holding the committed params.yaml and profiles, as the working folder."""
    shutil.copytree(ROOT / "profiles", folder / "profiles")
    shutil.copy(ROOT / "params.yaml", folder / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    subprocess.run(["git", "add", "params.yaml"], cwd=folder, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "p"], cwd=folder, check=True)
    monkeypatch.chdir(folder)
