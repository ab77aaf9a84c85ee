"""Results writer/reader: atomic, idempotent files; uniqueness check; filters; schema."""

import pandas as pd
import pyarrow.parquet as pq
import pytest

from initmem.config import RunConfig
from initmem.results import (EPOCHS_SCHEMA, RUNS_SCHEMA, ResultsError, ResultsWriter, completed_run_ids,
                             read_epochs, read_results, read_runs)


def _epoch(run_id, e):
    return {"run_id": run_id, "epoch": e, "step": 10 * e, "train_loss": 1.0, "train_acc": 0.5, "val_loss": 1.0,
            "val_loss_raw": 1.0, "val_acc": 0.5, "test_loss": 1.0, "test_acc": 0.5, "lr": 1e-3, "t_sgd": 0.0,
            "t_l2": 0.0, "t_adapt": 0.0, "w_norm": 1.0, "kernel_norms": [1.0], "wall_time": 0.0}


def _run(cfg, status="completed"):
    return {**cfg.to_dict(), "run_id": cfg.run_id, "pack_id": "p", "status": status, "epochs_done": 2,
            "tau_best": 1, "test_acc": 0.5}


def test_write_read_drop(tmp_path):
    w = ResultsWriter(str(tmp_path))
    a, b = RunConfig(seed=1), RunConfig(seed=2, optimizer="adam")
    w.write_epochs("p", [_epoch(a.run_id, e) for e in range(2)])
    w.write_epochs("p", [_epoch(a.run_id, 2)])
    w.write_runs("p", [_run(a), _run(b, "running")])
    runs, epochs = read_results(str(tmp_path))
    assert len(runs) == 2 and len(epochs) == 3
    assert str(epochs.epoch.dtype) == "Int32" and pd.isna(runs.loc[0, "tau_interp"])
    assert completed_run_ids(str(tmp_path)) == {a.run_id}
    assert w.drop_epochs_after("p", 1) == [f"{tmp_path}/epochs/p/e00002-00002.parquet"]
    assert read_epochs(str(tmp_path)).epoch.tolist() == [0, 1]
    sub, sub_epochs = read_results(str(tmp_path), filters=[("optimizer", "==", "adam")])
    assert sub.run_id.tolist() == [b.run_id] and sub_epochs.empty
    assert pq.read_schema(f"{tmp_path}/runs/p.parquet").equals(RUNS_SCHEMA, check_metadata=False)
    assert w.pack_rows("p")[0]["run_id"] == a.run_id and w.pack_rows("nope") == []


def test_duplicate_epoch_rows_are_detected(tmp_path):
    w = ResultsWriter(str(tmp_path))
    w.write_epochs("p", [_epoch("r", 0), _epoch("r", 1)])
    w.write_epochs("q", [_epoch("r", 1)])
    with pytest.raises(ResultsError, match=r"1 duplicated \(run_id, epoch\)"):
        read_epochs(str(tmp_path))


def test_empty_root_reads_as_empty_frames_with_the_schema(tmp_path):
    runs, epochs = read_results(str(tmp_path / "none"))
    assert runs.empty and list(epochs.columns) == EPOCHS_SCHEMA.names
    assert "sigma_w" in runs.columns


def test_rewriting_the_same_range_is_idempotent(tmp_path):
    w = ResultsWriter(str(tmp_path))
    rows = [_epoch("r", 0), _epoch("r", 1)]
    w.write_epochs("p", rows)
    w.write_epochs("p", rows)
    assert len(read_epochs(str(tmp_path))) == 2
    assert not list((tmp_path / "epochs" / "p").glob("*.tmp-*"))
