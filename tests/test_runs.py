"""`python -m hseg runs`: the study's runs by index, in the order DVC expands dvc.yaml's matrix."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hseg.__main__ import main as hseg_main
from hseg.errors import UserError
from hseg.runs import parser, run, run_at, stage_names, study_runs

ROOT = Path(__file__).resolve().parent.parent
STUDY = {"archs": ["unet", "fpn"], "encoders": ["resnet34"], "inits": ["scratch", "imagenet"], "seeds": [7, 3]}
# the eight runs of STUDY, written out by hand: arch, then encoder, then init, then seed varies fastest
EXPECTED = [("unet-resnet34-scratch", 7), ("unet-resnet34-scratch", 3),
            ("unet-resnet34-imagenet", 7), ("unet-resnet34-imagenet", 3),
            ("fpn-resnet34-scratch", 7), ("fpn-resnet34-scratch", 3),
            ("fpn-resnet34-imagenet", 7), ("fpn-resnet34-imagenet", 3)]


def test_runs_come_in_matrix_order_with_their_stage_names():
    params = {"study": STUDY}
    assert study_runs(params) == EXPECTED
    assert run_at(params, 5) == ("fpn-resnet34-scratch", 3)
    assert stage_names(*run_at(params, 0)) == ["train@unet-resnet34-scratch-7", "evaluate@unet-resnet34-scratch-7"]


@pytest.mark.parametrize("index", [8, -1, 100])
def test_an_index_outside_the_study_names_the_valid_range(index):
    with pytest.raises(UserError, match=rf"run index {index} is out of range: the study has 8 runs, indices 0 to 7"):
        run_at({"study": STUDY}, index)


def test_a_bad_study_is_the_settings_error():
    with pytest.raises(UserError, match=r"study.seeds"):
        study_runs({"study": {**STUDY, "seeds": [7, 7]}})


def write_params(folder: Path) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump({"study": STUDY}))
    return path


def test_listing_count_and_index_print_what_a_job_reads(tmp_path, capsys):
    path = write_params(tmp_path)
    for args, expected in ((["--count"], "8\n"),
                           (["--index", "3"], "train@unet-resnet34-imagenet-3\nevaluate@unet-resnet34-imagenet-3\n"),
                           ([], "".join(f"{i}\t{v}\t{s}\n" for i, (v, s) in enumerate(EXPECTED)))):
        assert run(parser().parse_args(["--params", str(path), *args])) == 0
        assert capsys.readouterr().out == expected


def main(monkeypatch, *args) -> int:
    """`python -m hseg runs ARGS` in this process: its exit status."""
    monkeypatch.setattr(sys, "argv", ["python -m hseg", "runs", *args])
    with pytest.raises(SystemExit) as exited:
        hseg_main()
        sys.exit(0)
    return exited.value.code


def test_the_command_exits_non_zero_with_one_line_for_a_bad_index(tmp_path, monkeypatch, capsys):
    assert main(monkeypatch, "--params", str(write_params(tmp_path)), "--index", "8") == 2
    shown = capsys.readouterr()
    assert shown.out == "" and shown.err == ("error: run index 8 is out of range: the study has 8 runs, "
                                             "indices 0 to 7 (python -m hseg runs lists them)\n")
    assert main(monkeypatch, "--help") == 0
    assert "--index N" in capsys.readouterr().out
    assert main(monkeypatch, "--params", str(tmp_path / "missing.yaml")) == 2
    assert "missing.yaml not found" in capsys.readouterr().err


def test_the_stage_names_are_the_ones_dvc_expands_from_dvc_yaml(tmp_path):
    """DVC's own expansion of the project's dvc.yaml (`dvc stage list`) over the same study."""
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    write_params(tmp_path)
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run(dvc + ["init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    listed = subprocess.run(dvc + ["stage", "list", "--name-only"], cwd=tmp_path, capture_output=True, text=True,
                            check=True).stdout.split()
    runs = study_runs({"study": STUDY})
    assert [name for name in listed if name.startswith("train@")] == [stage_names(*r)[0] for r in runs]
    assert [name for name in listed if name.startswith("evaluate@")] == [stage_names(*r)[1] for r in runs]
