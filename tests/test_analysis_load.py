"""Loading results roots, and the synthetic generator's contract: schema, layout, summaries.
Also: DuckDB and pandas alone answer "spread per optimizer and batch size" (the README queries).

    python -m pytest tests/test_analysis_load.py -q
"""

import glob
import os
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis.load import DEFAULT_EPOCH_COLUMNS, attach, load, procedure_columns, procedures
from analysis.memory import spread
from analysis.synthetic import Plant, grid, write_synthetic
from initmem.results import EPOCHS_SCHEMA, RUNS_SCHEMA, ResultsError, read_results

SMALL = dict(optimizers=["sgd", "adam"], batch_sizes=[16, 128], sigmas=[0.1, 1.0, 2.5], seeds=[0, 1], epochs=6)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = str(tmp_path_factory.mktemp("res") / "main_grid")
    truth = write_synthetic(r, "main_grid", Plant(n_diverged=2, seed=4), **SMALL)
    return r, truth


def test_files_follow_the_contract(root):
    r, truth = root
    runs_files = glob.glob(f"{r}/runs/*.parquet")
    ep_files = glob.glob(f"{r}/epochs/*/e*.parquet")
    assert len(runs_files) == len(ep_files) == 4
    for f in runs_files:
        assert pq.read_schema(f).equals(RUNS_SCHEMA, check_metadata=False)
    for f in ep_files:
        assert pq.read_schema(f).equals(EPOCHS_SCHEMA, check_metadata=False)
        assert os.path.basename(f) == "e00000-00006.parquet"
    runs, epochs = read_results(r)  # the contract's own reader (checks (run_id, epoch) uniqueness)
    assert len(runs) == 24 and set(runs["status"]) <= {"completed", "diverged"}
    assert (runs["status"] == "diverged").sum() == 2
    assert set(truth["procedures"]["pack_id"]) == set(runs["pack_id"])


def test_summaries_match_initmem_metrics(root):
    from initmem.metrics import summarize
    r, _ = root
    runs, epochs = read_results(r)
    for _, run in runs.iterrows():
        h = epochs[epochs["run_id"] == run["run_id"]].sort_values("epoch")
        assert h["epoch"].tolist() == list(range(int(run["epochs_done"]) + 1))
        s = summarize({k: h[k].tolist() for k in ("val_loss", "train_acc", "val_acc", "test_acc", "test_loss",
                                                  "w_norm")})
        for k, v in s.items():
            got = run[k]
            if v is None:
                assert pd.isna(got), (k, got)
            else:
                assert float(got) == pytest.approx(v, rel=1e-12), k
        if run["status"] == "diverged":
            assert h["epoch"].max() == run["diverged_epoch"] and not np.isfinite(h["train_loss"].iloc[-1])


def test_load_keys_and_filters(root):
    r, _ = root
    runs, epochs = load(r)
    assert runs["run"].tolist() == list(range(len(runs)))
    assert list(epochs.columns) == ["run_id", *[c for c in DEFAULT_EPOCH_COLUMNS if c != "run_id"], "run"]
    assert (runs["run_id"].to_numpy()[epochs["run"]] == epochs["run_id"].to_numpy()).all()
    assert runs["procedure"].nunique() == 4
    pr = procedures(runs)
    assert len(pr) == 4 and "sigma_w" not in pr and "seed" not in pr and "experiment" in pr
    assert set(procedure_columns(runs)) & {"device", "compile", "channels_last", "sigma_w", "seed"} == set()
    sel, sel_ep = load(r, filters=[("optimizer", "==", "adam"), ("batch_size", "==", 16)])
    assert len(sel) == 6 and set(sel_ep["run_id"]) <= set(sel["run_id"]) and sel_ep["run"].max() < 6
    a = attach(sel_ep, sel, ["sigma_w", "procedure"])
    assert (a["sigma_w"].to_numpy() == sel["sigma_w"].to_numpy()[sel_ep["run"]]).all()


def test_two_roots_with_the_same_run_ids_stay_apart(root, tmp_path):
    r, _ = root
    other = str(tmp_path / "copy")
    shutil.copytree(r, other)
    runs, epochs = load([r, other])
    assert len(runs) == 48 and runs["run_id"].nunique() == 24
    assert epochs["run"].nunique() == 48
    assert (runs["run_id"].to_numpy()[epochs["run"]] == epochs["run_id"].to_numpy()).all()


def test_duplicated_epoch_rows_raise(root, tmp_path):
    r, _ = root
    bad = str(tmp_path / "bad")
    shutil.copytree(r, bad)
    f = sorted(glob.glob(f"{bad}/epochs/*/*.parquet"))[0]
    shutil.copy(f, f.replace("e00000-00006", "e00003-00006"))
    with pytest.raises(ResultsError):
        load(bad)


def test_empty_root(tmp_path):
    runs, epochs = load(str(tmp_path))
    assert len(runs) == 0 and len(epochs) == 0 and "procedure" in runs


def test_grid_sizes_match_spec_section_2():
    sizes = {e: len(grid(e)) for e in ("main_grid", "long_sgd", "lr_l2", "norm_aug", "best_recipe", "depth")}
    assert sizes == {"main_grid": 6250, "long_sgd": 10, "lr_l2": 1200, "norm_aug": 200, "best_recipe": 120,
                     "depth": 1500}


# The README's queries ("spread per optimizer and batch size"), verbatim.
DUCKDB_QUERY = """
WITH cell AS (
  SELECT optimizer, batch_size, sigma_w, avg(test_acc) AS acc
  FROM read_parquet('{root}/runs/*.parquet')
  GROUP BY ALL)
SELECT optimizer, batch_size, 100 * (max(acc) - min(acc)) AS spread_pp
FROM cell GROUP BY ALL ORDER BY ALL
"""


def pandas_query(root):
    runs = pd.read_parquet(f"{root}/runs")
    cell = runs.groupby(["optimizer", "batch_size", "sigma_w"])["test_acc"].mean()
    return 100 * cell.groupby(["optimizer", "batch_size"]).agg(lambda s: s.max() - s.min())


def test_duckdb_and_pandas_answer_spread_per_optimizer_and_batch_size(root):
    duckdb = pytest.importorskip("duckdb")
    r, _ = root
    ours = spread(load(r)[0], by=["optimizer", "batch_size"], n_boot=0)[["optimizer", "batch_size", "mem"]]
    dd = duckdb.sql(DUCKDB_QUERY.format(root=r)).df()
    np.testing.assert_allclose(dd["spread_pp"], ours["mem"], rtol=1e-12)
    assert dd["optimizer"].tolist() == ours["optimizer"].tolist()
    pdq = pandas_query(r).reset_index()
    np.testing.assert_allclose(pdq["test_acc"], ours["mem"], rtol=1e-12)


def test_synthetic_cli_writes_one_root_per_experiment(tmp_path, capsys, bench_script):
    cli = bench_script("synthetic_results")
    cli.main([str(tmp_path), "--experiment", "best_recipe", "long_sgd", "--seeds", "0", "--epochs", "3",
              "--beta-mode", "epoch", "--mem", "none"])
    assert "wrote" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["best_recipe", "long_sgd"]
    runs, epochs = load([str(tmp_path / "best_recipe"), str(tmp_path / "long_sgd")])
    assert set(runs["experiment"]) == {"best_recipe", "long_sgd"} and len(runs) == 12 + 10
    assert len(epochs) == (12 + 10) * 4
