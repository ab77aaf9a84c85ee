"""What was run beside what the paper ran: the catalogue's full preset as the paper's design, a cut or
mini study's departures named, and a report banner that says what a mini or smoke study is.

    python -m pytest tests/test_analysis_design.py -q
"""

import os

import pandas as pd

from analysis.design import (banner, differences, measured_design, not_comparable, paper_design, presets_of,
                             study_table)
from analysis.load import load, progress
from analysis.synthetic import Plant, synthetic_frames, write_synthetic
from initmem.layout import write_plan
from initmem.study import SIGMA25, SIGMA5


def test_the_paper_design_is_the_full_preset():
    d = paper_design("main_grid", {"optimizer": "sgd", "batch_size": 128, "lr0": 1e-3})
    assert d["sigmas"] == SIGMA25 and d["seeds"] == 10
    assert {k: d["fields"][k] for k in ("dataset", "width", "train_subset", "eval_subset", "epochs")} == \
        {"dataset": ("cifar10",), "width": (1.0,), "train_subset": (0,), "eval_subset": (0,), "epochs": (300,)}
    assert list(d["fields"])[:5] == ["dataset", "width", "train_subset", "eval_subset", "epochs"]
    assert d["fields"]["schedule"] == ("cosine",) and d["fields"]["weight_decay"] == (0.0,)  # resolved defaults
    assert "optimizer" not in d["fields"] and "sigma_w" not in d["fields"]  # selected; compared as a set
    long = paper_design("long_sgd", {"batch_size": 16})
    assert long["sigmas"] == SIGMA5 and long["seeds"] == 1 and long["fields"]["epochs"] == (5000,)
    assert paper_design("best_recipe", {"optimizer": "adam"})["fields"]["epochs"] == (200,)
    assert paper_design("lr_l2", {"lr0": 0.5}) is None          # no grid of the paper holds it
    assert paper_design("my_sweep") is None                      # not a catalogue experiment


def test_differences_name_what_departs():
    runs, _, _ = synthetic_frames("main_grid", Plant(), optimizers=["sgd"], batch_sizes=[128], sigmas=[0.1, 0.3, 2.5],
                                  seeds=[0, 1, 2], epochs=4, width=0.125, train_subset=2400)
    paper = paper_design("main_grid", {"optimizer": "sgd", "batch_size": 128})
    diffs = differences(measured_design(runs), paper)
    assert diffs == ["3 of 25 sigmas", "3 of 10 seeds", "width 0.125 (paper 1)", "train_subset 2,400 (paper all)",
                     "epochs 4 (paper 300)"]
    assert not_comparable(diffs[:2]) == "not comparable (measured on 3 of 25 sigmas, 3 of 10 seeds)"
    # sigmas outside the paper's set are named; more seeds than the paper's are comparable
    lr, _, _ = synthetic_frames("lr_l2", Plant(), batch_sizes=[16], sigmas=[0.1, 0.5, 1.0, 1.8, 2.5, 3.0],
                                seeds=list(range(12)))
    assert differences(measured_design(lr), paper_design("lr_l2")) == ["5 of 5 sigmas (+1 outside the paper's set)"]
    assert differences(measured_design(lr[lr["sigma_w"] < 3.0]), paper_design("lr_l2")) == []
    # any other config field the paper fixed: plain SGD at lr0 1e-2 in the main grid (as the smoke trains it)
    fast = runs.assign(lr0=1e-2, schedule="constant")
    assert differences(measured_design(fast), paper)[-2:] == ["schedule constant (paper cosine)",
                                                             "lr0 0.01 (paper 0.001)"]


def test_a_mini_study_says_what_it_is_and_a_full_one_says_nothing(tmp_path):
    base = str(tmp_path)
    write_synthetic(base, ["main_grid", "lr_l2"], Plant(), sigmas=list(SIGMA5), seeds=[0, 1, 2], epochs=5,
                    batch_sizes=[16, 128], width=0.25, train_subset=8000, eval_subset=2000)
    roots = [os.path.join(base, e) for e in ("main_grid", "lr_l2")]
    write_plan(roots[0], "main_grid_mini", "mini", "the mini main grid", [])
    runs, _ = load(roots)
    presets = presets_of(runs, progress(roots, runs))
    assert presets == {"main_grid": "mini", "lr_l2": "unknown (no plan.json)"}
    t = study_table(runs, presets).set_index("experiment")
    assert t.loc["main_grid", "seeds"] == 3 and t.loc["main_grid", "sigmas"] == "0.1, 0.5, 1, 1.8, 2.5"
    assert t.loc["main_grid", "width"] == "0.25" and t.loc["lr_l2", "train_subset"] == "8,000"
    text = banner(t.reset_index())
    assert text.startswith("Not the paper's scale. main_grid (preset mini; 150 runs): 5 of 25 sigmas, 3 of 10 seeds, "
                           "width 0.25 (paper 1), train_subset 8,000 (paper all), eval_subset 2,000 (paper all), "
                           "epochs 5 (paper 300); lr_l2 (preset unknown (no plan.json); ")
    assert "not the paper's" in text and "'not comparable'" in text
    # the paper's own design: no banner
    full = synthetic_frames("long_sgd", Plant(), epochs=None)[0]
    assert banner(study_table(full, {"long_sgd": "full"})) == ""
    assert study_table(full).loc[0, "departs from the paper"] == ""


def test_unknown_experiment_is_named_not_judged():
    runs = pd.DataFrame({"experiment": "my_sweep", "procedure": 0, "sigma_w": [0.1, 1.0], "seed": 0,
                         "batch_size": 128, "width": 1.0})
    assert "not a catalogue experiment" in banner(study_table(runs))
