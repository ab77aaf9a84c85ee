"""What the analysis is given: paths without results (exit 2, nothing written), a sweep still running
(the report says n of N), a root with only some experiments, and diverged runs (their divergence
row is used nowhere).

    python -m pytest tests/test_analysis_input.py -q
"""

import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis import clocks as clocks_cli
from analysis import report as report_cli
from analysis.load import NoResults, load, planned_runs, progress
from analysis.report import analyse, build_report
from analysis.memory import checkpoint_table
from analysis.synthetic import Plant, write_synthetic

SMALL = dict(optimizers=["sgd", "adam"], batch_sizes=[16, 128], sigmas=[0.1, 1.0, 2.5], seeds=[0, 1, 2], epochs=8)


# ------------------------------------------------------------------ no results
@pytest.mark.parametrize("kind", ["missing", "empty", "unrelated"])
def test_report_on_a_path_without_results_exits_2_and_writes_nothing(kind, tmp_path, capsys):
    root = tmp_path / "res"
    if kind != "missing":
        root.mkdir()
    if kind == "unrelated":
        (root / "runs").mkdir()
        (root / "notes.txt").write_text("no parquet here")
    out = tmp_path / "r.html"
    with pytest.raises(SystemExit) as e:
        report_cli.main([str(root), "-o", str(out), "--no-linear-model"])
    assert e.value.code == 2 and not out.exists()
    err = capsys.readouterr().err
    assert str(root) in err and "runs/" in err and "epochs/" in err and "Parquet" in err


def test_clocks_on_a_path_without_results_exits_2_before_printing(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        clocks_cli.main(["--optimizer", "sgd", "--lr0", "1e-3", "--batch-size", "128", "--epochs", "300",
                         "--results", str(tmp_path / "nothing")])
    cap = capsys.readouterr()
    assert e.value.code == 2 and cap.out == "" and str(tmp_path / "nothing") in cap.err and "runs/" in cap.err


def test_load_names_every_bad_root(tmp_path):
    good = str(tmp_path / "good")
    write_synthetic(good, "main_grid", Plant(), **SMALL)
    with pytest.raises(NoResults, match="nope1.*nope2"):
        load([good, str(tmp_path / "nope1"), str(tmp_path / "nope2")], require_results=True)


# ------------------------------------------------------------------ some experiments only
def test_root_with_some_experiments_gives_their_sections_and_names_the_absent(tmp_path):
    base = str(tmp_path / "s")
    write_synthetic(base, ["main_grid", "lr_l2"], Plant(), **SMALL)
    out = str(tmp_path / "r.html")
    report_cli.main([f"{base}/main_grid", f"{base}/lr_l2", "-o", out, "--n-boot", "20", "--no-linear-model"])
    page = open(out, encoding="utf-8").read()
    ids = re.findall(r"<section id='([^']+)'>", page)
    assert "main_grid" in ids and "lr_l2" in ids and not {"long_sgd", "norm_aug", "best_recipe", "depth"} & set(ids)
    assert "Absent: long_sgd, norm_aug, best_recipe, depth" in page


# ------------------------------------------------------------------ a sweep still running
def _plan_json(root, runs_table, extra):
    """plan.json in tune_jobs.runner.save_plan's format: the packs the runs came from plus `extra`
    planned runs that have not written anything yet."""
    packs = [[{"run_id": r} for r in g["run_id"]] for _, g in runs_table.groupby("pack_id")]
    packs.append([{"run_id": f"later{i}"} for i in range(extra)])
    with open(os.path.join(root, "plan.json"), "w") as f:
        json.dump({"experiment": "main_grid", "preset": "full", "description": "", "packs": packs}, f)


def test_partial_sweep_reports_n_of_N_and_leaves_running_runs_out(tmp_path):
    root = str(tmp_path / "main_grid")
    write_synthetic(root, "main_grid", Plant(), **SMALL)
    runs_files = sorted(os.listdir(os.path.join(root, "runs")))
    # one pack still running: its runs rows say so (the trainer writes them each epoch)
    running = os.path.join(root, "runs", runs_files[0])
    t = pq.read_table(running)
    t = t.set_column(t.schema.get_field_index("status"), "status", [["running"] * t.num_rows])
    pq.write_table(t, running)
    all_runs = pd.read_parquet(os.path.join(root, "runs"))
    _plan_json(root, all_runs, extra=30)
    n_total, n_running = len(all_runs) + 30, t.num_rows
    assert planned_runs(root) == n_total
    prog = progress(root)
    assert prog[0]["finished"] == len(all_runs) - n_running and prog[0]["status"]["running"] == n_running

    out = str(tmp_path / "r.html")
    report_cli.main([root, "-o", out, "--n-boot", "20", "--no-linear-model"])
    page = open(out, encoding="utf-8").read()
    n_done = len(all_runs) - n_running
    assert f"{n_done} of {n_total} planned runs finished" in page and "PARTIAL" in page
    assert f"Runs still running ({n_running}) are left out" in page
    # the running pack's procedure is not in any table: one procedure fewer than the data hold
    runs, epochs = load(root)
    A = analyse(runs[runs["status"] != "running"], epochs[epochs["run"].isin(runs.loc[runs["status"] != "running", "run"])],
                n_boot=0)
    assert f"{A.procs['procedure'].nunique()} procedures" in page


def test_root_without_plan_says_n_runs_and_status_counts(tmp_path):
    root = str(tmp_path / "train_out")
    write_synthetic(root, "main_grid", Plant(n_diverged=2), **SMALL)
    assert planned_runs(root) is None
    out = str(tmp_path / "r.html")
    report_cli.main([root, "-o", out, "--n-boot", "20", "--no-linear-model"])
    page = open(out, encoding="utf-8").read()
    n = len(pd.read_parquet(os.path.join(root, "runs")))
    assert f"{n} runs ({n - 2} completed, 2 diverged; no plan.json, so the planned total is unknown)" in page


def test_complete_sweep_says_complete(tmp_path):
    root = str(tmp_path / "main_grid")
    write_synthetic(root, "main_grid", Plant(), **SMALL)
    all_runs = pd.read_parquet(os.path.join(root, "runs"))
    _plan_json(root, all_runs, extra=0)
    page = build_report(*load(root), n_boot=10, linear_model=False, progress=progress(root))
    assert f"{len(all_runs)} of {len(all_runs)} planned runs finished" in page and "complete" in page
    assert "PARTIAL" not in page


def test_sweep_with_no_finished_run_exits_2(tmp_path, capsys):
    root = str(tmp_path / "main_grid")
    write_synthetic(root, "main_grid", Plant(), **{**SMALL, "optimizers": ["sgd"], "batch_sizes": [16]})
    for f in os.listdir(os.path.join(root, "runs")):
        p = os.path.join(root, "runs", f)
        t = pq.read_table(p)
        pq.write_table(t.set_column(t.schema.get_field_index("status"), "status", [["running"] * t.num_rows]), p)
    out = tmp_path / "r.html"
    with pytest.raises(SystemExit) as e:
        report_cli.main([root, "-o", str(out)])
    assert e.value.code == 2 and not out.exists() and "no finished runs" in capsys.readouterr().err


# ------------------------------------------------------------------ diverged runs
def test_divergence_row_is_used_nowhere(tmp_path):
    root = str(tmp_path / "mg")
    write_synthetic(root, "main_grid", Plant(n_diverged=4, seed=3), **{**SMALL, "epochs": 10})
    raw_runs = pd.read_parquet(os.path.join(root, "runs"))
    raw_ep = pd.read_parquet(os.path.join(root, "epochs"))
    div = raw_runs[raw_runs["status"] == "diverged"]
    assert len(div) == 4
    # the raw files hold the divergence row (accuracy 0.1 from the frozen weights) ...
    for _, r in div.iterrows():
        assert (raw_ep[(raw_ep["run_id"] == r["run_id"])]["epoch"] == r["diverged_epoch"]).any()
    runs, epochs = load(root)
    # ... load drops it, once, for every consumer
    e = epochs.merge(runs[["run", "run_id", "diverged_epoch"]], on="run")
    assert not (e["diverged_epoch"].notna() & (e["epoch"] >= e["diverged_epoch"].fillna(1 << 30))).any()
    kept = raw_ep.merge(raw_runs[["run_id", "diverged_epoch"]], on="run_id")
    kept = kept[kept["diverged_epoch"].isna() | (kept["epoch"] < kept["diverged_epoch"].fillna(0))]
    assert len(epochs) == len(kept)

    A = analyse(runs, epochs, n_boot=0)
    cfg = raw_runs[["run_id", "optimizer", "batch_size", "sigma_w"]]
    kept = kept.merge(cfg, on="run_id")
    for _, r in div.iterrows():
        # beta(t) at the divergence epoch: OLS over the procedure's other runs only (np.polyfit)
        same = kept[(kept["optimizer"] == r["optimizer"]) & (kept["batch_size"] == r["batch_size"])
                    & (kept["epoch"] == r["diverged_epoch"])]
        slope = np.polyfit(same["sigma_w"], same["val_acc"], 1)[0]
        b = A.beta[(A.beta["optimizer"] == r["optimizer"]) & (A.beta["batch_size"] == r["batch_size"])
                   & (A.beta["epoch"] == r["diverged_epoch"])]
        assert b["beta"].iloc[0] == pytest.approx(slope, rel=1e-9, abs=1e-12)
        assert b["n"].iloc[0] == len(same)
    # Tables 2-3: val@final of a cell holding a diverged run is the mean of each run's last kept row
    ct = checkpoint_table(runs, epochs, ["optimizer", "batch_size"])
    last = kept.sort_values("epoch").groupby("run_id").tail(1).merge(raw_runs[["run_id", "seed"]], on="run_id")
    for _, r in div.iterrows():
        if r["sigma_w"] not in (0.1, 2.5):
            continue
        cell = last[(last["optimizer"] == r["optimizer"]) & (last["batch_size"] == r["batch_size"])
                    & (last["sigma_w"] == r["sigma_w"])]
        row = ct[(ct["optimizer"] == r["optimizer"]) & (ct["batch_size"] == r["batch_size"])
                 & (ct["sigma_w"] == r["sigma_w"])]
        assert row["val@final"].iloc[0] == pytest.approx(100 * cell["val_acc"].mean(), rel=1e-12)


def test_clock_table_ignores_clocks_of_diverged_runs(tmp_path):
    root = str(tmp_path / "mg")
    write_synthetic(root, "main_grid", Plant(n_diverged=6, seed=4), **SMALL)
    runs, epochs = load(root)
    A = analyse(runs, epochs, n_boot=0)
    fine = runs[runs["status"] != "diverged"].groupby("procedure")["t_sgd"].median()
    got = A.clocks.set_index("procedure")["t_sgd"]
    assert np.allclose(got.loc[fine.index], fine)


def test_extension_clocks_in_table_and_cli(tmp_path, capsys):
    from analysis.clocks import recipe_clocks
    r = recipe_clocks("adamw", 1e-3, 128, 300)
    assert r["t_wd"] == pytest.approx(1e-4 * r["t_adapt"]) and np.isnan(r["t_sgd_eff"])
    m = recipe_clocks("sgd_momentum", 1e-3, 128, 300, momentum=0.9)
    assert m["t_sgd_eff"] == pytest.approx(100 * m["t_sgd"]) and np.isnan(m["t_wd"])
    assert m["clock"] == "t_sgd" and m["T"] == m["t_sgd"]  # the paper's own clock is unchanged
    root = str(tmp_path / "mg")
    write_synthetic(root, "main_grid", Plant(), optimizers=["sgd", "sgd_momentum", "adamw", "muon"],
                    batch_sizes=[128], sigmas=[0.1, 2.5], seeds=[0], epochs=3)
    runs, epochs = load(root)
    ct = analyse(runs, epochs, n_boot=0).clocks.set_index("optimizer")
    assert ct.loc["muon", "t_wd"] == pytest.approx(1e-4 * ct.loc["muon", "t_adapt"])
    assert ct.loc["sgd_momentum", "t_sgd_eff"] == pytest.approx(ct.loc["sgd_momentum", "t_sgd"] / 0.01)
    assert np.isnan(ct.loc["sgd", "t_wd"]) and np.isnan(ct.loc["sgd", "t_sgd_eff"])
    page = build_report(runs, epochs, n_boot=10, linear_model=False)
    assert "T_wd (initmem ext.)" in page and "T_SGD,eff (initmem ext.)" in page
    clocks_cli.main(["--optimizer", "muon", "--lr0", "1e-3", "--batch-size", "128", "--epochs", "3",
                     "--results", root])
    out = capsys.readouterr().out
    assert "T_wd = wd sum eta_k" in out and "initmem extension" in out


def test_real_diverged_run_from_train_pack(tmp_path):
    # the training core's own divergence (lr0 1e300 overflows float64 within epoch 1, as in
    # tests/test_train.py): its epoch-1 row is in the Parquet, and the analysis uses it nowhere
    pytest.importorskip("torch")
    from initmem.config import RunConfig
    from initmem.data import load_splits
    from initmem.train import train_pack
    base = dict(dataset="synthetic", train_subset=48, eval_subset=24, batch_size=16, epochs=2, width=1 / 16,
                precision="fp64", lr0=0.05, experiment="smoke")
    runs_cfg = [RunConfig(**base, sigma_w=0.5, seed=0), RunConfig(**base, sigma_w=2.0, seed=1),
                RunConfig(**{**base, "lr0": 1e300}, sigma_w=1.0, seed=2)]
    root = str(tmp_path / "res")
    train_pack(runs_cfg, load_splits("synthetic", train_subset=48, eval_subset=24), results=root, log=None)
    raw_runs = pd.read_parquet(os.path.join(root, "runs"))
    bad = raw_runs[raw_runs["status"] == "diverged"].iloc[0]
    assert bad["run_id"] == runs_cfg[2].run_id and bad["diverged_epoch"] == 1
    raw_ep = pd.read_parquet(os.path.join(root, "epochs"))
    assert sorted(raw_ep.loc[raw_ep["run_id"] == bad["run_id"], "epoch"]) == [0, 1]  # the row is written
    runs, epochs = load(root)
    r = int(runs.loc[runs["run_id"] == bad["run_id"], "run"].iloc[0])
    assert epochs.loc[epochs["run"] == r, "epoch"].tolist() == [0]
    ct = checkpoint_table(runs, epochs, ["lr0"], sigmas=[1.0])
    e0 = raw_ep[(raw_ep["run_id"] == bad["run_id"]) & (raw_ep["epoch"] == 0)]["val_acc"].iloc[0]
    assert ct.loc[np.isclose(ct["lr0"], 1e300), "val@final"].iloc[0] == pytest.approx(100 * e0)
    page = build_report(runs, epochs, n_boot=10, linear_model=False)  # and the report builds around it
    assert "1 diverged" in page
