"""`python -m hseg report`: mean ± sd per variant and level, per-seed values, resolved differences and
which survive Holm's correction (the committed documents' tables against it: tests/test_docs.py)."""
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hseg.report import report
from hseg.summary import summarize
from tests.conftest import committed_text

ROOT = Path(__file__).resolve().parent.parent


def metrics(m0, m1, head, torso, epochs=None):
    """A run's metrics file; ``epochs``: as the evaluate stage records it (None: a file from before it did)."""
    scores = {"miou0": m0, "miou1": m1, "iou0": {"bg": 0.9, "body": m0},
              "iou1": {"bg": 0.9, "head": head, "torso": torso}}
    return scores if epochs is None else {**scores, "epochs": epochs}


def write_study(folder: Path) -> Path:
    """A two-variant, three-seed summary: UNet trained 7 epochs with every seed, DeepLabV3+ 7, 9 and 7."""
    scores = {"unet-resnet34-scratch": {42: metrics(0.60, 0.30, 0.35, 0.25, 7), 43: metrics(0.62, 0.32, 0.36, 0.28, 7),
                                        44: metrics(0.64, 0.31, 0.33, 0.29, 7)},
              "deeplabv3plus-resnet34-scratch": {42: metrics(0.50, 0.30, 0.31, 0.29, 7),
                                                 43: metrics(0.51, 0.31, 0.30, 0.32, 9),
                                                 44: metrics(0.52, 0.33, 0.34, 0.32, 7)}}
    path = folder / "summary.json"
    path.write_text(json.dumps(summarize(scores, [42, 43, 44])))
    return path


def test_report_shows_mean_sd_per_seed_values_and_verdicts(tmp_path):
    text = report(write_study(tmp_path), markdown=False)
    # UNet mIoU^0: 0.60, 0.62, 0.64 -> 0.620 ± 0.020; mIoU^1: 0.30, 0.32, 0.31 -> 0.310 ± 0.010
    # torso (0.25 + 0.28 + 0.29) / 3
    assert "| unet-resnet34-scratch | 7 | 0.620 ± 0.020 | 0.310 ± 0.010 | 0.273 (torso) | 0.300, 0.320, 0.310 |" in text
    # seeds that trained different epochs show each count once; no training logs exist in tmp_path: the summary alone
    assert "| deeplabv3plus-resnet34-scratch | 7/9 | 0.510 ± 0.010 |" in text and not (tmp_path / "dvclive").exists()
    assert "mIoU^1 (head, torso)" in text and "Mean ± sd over 3 seed(s) (42, 43, 44)" in text
    # mIoU^0 differences 0.10, 0.11, 0.12: mean 0.11, sd 0.01, half-width 4.3027 * 0.01 / sqrt 3 = 0.0248
    assert "mIoU^0  unet-resnet34-scratch - deeplabv3plus-resnet34-scratch: +0.110 [+0.085, +0.135]  resolved" in text
    # mIoU^1 differences 0.00, 0.01, -0.02: a tie
    assert re.search(r"mIoU\^1  unet\S+ - deeplab\S+: -0\.003 \[-\S+, \+\S+\]  tie", text)
    # Holm over the 2 differences: mIoU^0's t = 0.11 / (0.01 / sqrt 3) = 19.05 on 2 df, p = 1 - t / sqrt(2 + t^2)
    # = 0.0027 <= 0.05 / 2; mIoU^1's t = -0.0033 / (0.0153 / sqrt 3) = -0.378, p = 0.7418 > 0.05 / 1
    assert "[+0.085, +0.135]  resolved; resolved after Holm (p 0.0027)" in text
    assert re.search(r"mIoU\^1  .*  tie; not after Holm \(p 0\.7418\)", text)
    assert text.endswith("Holm-Bonferroni at 0.05 (two-sided) over a family of 2 differences (pairs x levels: 1 x 2): "
                         "1 survive, of 1 resolved without correction (the smallest p must be <= 0.0250).")


def test_one_variant_has_no_pairs_to_compare(tmp_path):
    path = tmp_path / "summary.json"
    scores = {"unet-resnet34-scratch": {42: metrics(0.60, 0.30, 0.35, 0.25), 43: metrics(0.62, 0.32, 0.36, 0.28)}}
    path.write_text(json.dumps(summarize(scores, [42, 43])))
    text = report(path, markdown=False)
    # mIoU^0 0.60, 0.62 -> 0.610 ± 0.014 (sd of two values: |a - b| / sqrt 2); metrics without epochs: '-'
    assert "| unet-resnet34-scratch | - | 0.610 ± 0.014 |" in text
    assert text.endswith("Paired differences: none (one variant).") and "95 % t interval" not in text


def test_report_cli_without_a_summary_says_what_to_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hseg", "report", "--summary", str(tmp_path / "none.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "run the study first" in proc.stdout


def test_update_writes_the_table_between_the_markers_and_keeps_the_rest(tmp_path):
    summary = write_study(tmp_path)
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n<!-- report:start -->\nold table\n<!-- report:end -->\n\nafter\n")
    cmd = [sys.executable, "-m", "hseg", "report", "--summary", str(summary), "--update", str(page)]
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=60).returncode == 0
    table = report(summary, markdown=True)
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


def simpson_two_sided_p(t: float, df: int, steps: int = 20000) -> float:
    """1 - 2 * integral of the t density from 0 to |t| (Simpson's rule): independent of the continued fraction."""
    def density(x):
        return math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi) \
            * (1 + x * x / df) ** (-(df + 1) / 2)
    h = abs(t) / steps
    inner = sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    return 1 - 2 * h / 3 * (density(0) + inner + density(abs(t)))


# The README's table and ranking: main's CPU study
README_SUMMARY = "metrics/summary.json"


def test_holm_verdicts_on_the_committed_summary_match_an_independent_computation(tmp_path):
    summary = json.loads(committed_text(README_SUMMARY))
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    text = report(tmp_path / "summary.json", markdown=False)
    printed = {(m["level"], m["pair"]): m for m in re.finditer(
        r"^  mIoU\^(?P<level>\d)  (?P<pair>.+?): \S+ \[.+?\]  (?:resolved|tie); (?P<holm>resolved after Holm|not after "
        r"Holm) \(p (?P<p>[\d.]+)\)$", text, re.M)}
    tests = [(k.removeprefix("miou"), pair, d) for pair, by_level in summary["differences"].items()
             for k, d in by_level.items()]
    assert len(printed) == len(tests) == 18, "one line per pair of the 4 variants x 3 levels"
    p = [simpson_two_sided_p(d["mean"] / (d["sd"] / math.sqrt(d["n"])), d["n"] - 1) for _, _, d in tests]
    # Holm as adjusted p-values: the running maximum of (m - rank) * p over the sorted p-values, against alpha
    adjusted, running = {}, 0.0
    for rank, i in enumerate(sorted(range(len(p)), key=p.__getitem__)):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    for i, (level, pair, _) in enumerate(tests):
        line = printed[(level, pair)]
        assert float(line["p"]) == pytest.approx(p[i], abs=5e-5), (level, pair)
        assert (line["holm"] == "resolved after Holm") == (adjusted[i] <= 0.05), (level, pair, adjusted[i])
    assert f"over a family of 18 differences (pairs x levels: 6 x 3): {sum(a <= 0.05 for a in adjusted.values())} " \
           "survive" in text


def test_readme_quotes_the_holm_line_the_committed_summary_gives(tmp_path):
    """The README's ranking quotes the report's Holm summary line; it must be what the report prints."""
    (tmp_path / "summary.json").write_text(committed_text(README_SUMMARY))
    last_line = report(tmp_path / "summary.json", markdown=False).splitlines()[-1]
    readme = " ".join((ROOT / "README.md").read_text().split())
    quoted = re.search(r"`(Holm-Bonferroni at [^`]+)`", readme)
    assert quoted, "README.md quotes no `Holm-Bonferroni at ...` line of python -m hseg report"
    assert last_line.startswith(quoted.group(1)), f"README quotes {quoted.group(1)!r}; the report prints {last_line!r}"
