"""python -m tune_jobs export: a results root into a live MLflow server (started here on 127.0.0.1
with a sqlite store, read back with MlflowClient) and into TensorBoard event files (read back with
TensorBoard's own EventAccumulator); counts and values equal the Parquet; exporting again, or while
the sweep goes on, adds nothing twice."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from analysis.synthetic import write_synthetic
from initmem.results import read_epochs, read_runs
from tune_jobs.export import PARAMS, main as export_main, points

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
LIVE_EPOCH = 4   # the "running" sweep has written epochs 0..4 of every run


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """A finished root and the same sweep mid-run (its runs 'running', epochs up to LIVE_EPOCH)."""
    base = tmp_path_factory.mktemp("export")
    full = base / "full" / "main_grid"
    write_synthetic(str(full), "main_grid", sigmas=[0.5, 2.0], seeds=[0], batch_sizes=[16],
                    optimizers=["sgd", "adam"], epochs=12)
    live = base / "live" / "main_grid"
    for f in full.rglob("*.parquet"):
        table = pq.read_table(f)
        dest = live / f.relative_to(full)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if f.parent.name == "runs":
            df = table.to_pandas()
            df["status"] = "running"
            pq.write_table(table.from_pandas(df, schema=table.schema, preserve_index=False), dest)
        else:
            pq.write_table(table.filter(np.asarray(table["epoch"]) <= LIVE_EPOCH), dest)
    return full, live


def _progress(live: Path, full: Path) -> None:
    """The sweep goes on: its files become the finished root's."""
    shutil.rmtree(live)
    shutil.copytree(full, live)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    pytest.importorskip("mlflow.server")
    tmp = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
                             "--default-artifact-root", str(tmp / "artifacts"), "--workers", "1"],
                            stdout=open(tmp / "server.log", "w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "MLFLOW_TRACKING_URI": ""})
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=uri)
    deadline = time.time() + 180
    while True:
        try:
            client.search_experiments()
            break
        except Exception:
            assert proc.poll() is None, (tmp / "server.log").read_text()[-3000:]
            assert time.time() < deadline, "the MLflow server did not answer in 180 s"
            time.sleep(1)
    yield uri, client
    proc.terminate()
    proc.wait(30)


def _children(client, name):
    exp = client.get_experiment_by_name("initmem")
    parents = client.search_runs([exp.experiment_id], f"tags.`initmem.experiment` = '{name}' and "
                                 "tags.`initmem.role` = 'experiment'")
    assert len(parents) == 1, parents
    kids = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'",
                              max_results=1000)
    return parents[0], {k.data.tags["initmem.run_id"]: k for k in kids}


def _mlflow_equals_parquet(client, root: Path, kids: dict) -> None:
    runs, epochs = read_runs(str(root)), read_epochs(str(root))
    assert sorted(kids) == sorted(runs["run_id"])
    want = points(epochs)
    for rid, kid in kids.items():
        row = runs.set_index("run_id").loc[rid]
        assert kid.data.params["sigma_w"] == str(row["sigma_w"]) and kid.data.params["optimizer"] == row["optimizer"]
        assert set(PARAMS) <= set(kid.data.params)
        mine = epochs[epochs["run_id"] == rid].sort_values("epoch")
        for metric in ("val_loss", "test_acc", "t_sgd", "w_norm", "kernel_norm/00"):
            hist = sorted((m.step, m.value) for m in client.get_metric_history(kid.info.run_id, metric))
            if metric == "kernel_norm/00":
                expect = [(int(e), float(k[0])) for e, k in zip(mine["epoch"], mine["kernel_norms"])]
            else:
                expect = list(zip(mine["epoch"].astype(int), mine[metric].astype(float)))
            assert [s for s, _ in hist] == [e for e, _ in expect], (rid, metric)       # each epoch once
            np.testing.assert_allclose([v for _, v in hist], [v for _, v in expect], rtol=1e-12)
        assert int(kid.data.tags["initmem.epochs_exported"]) == want[rid][-1][0]


@pytest.mark.slow
def test_mlflow_export_nests_runs_under_the_sweep_and_never_duplicates(roots, mlflow_server, capsys):
    full, live = roots
    uri, client = mlflow_server
    assert export_main([str(live), "--to", "mlflow", "--tracking-uri", uri]) == 0
    n, n_points = len(read_runs(str(live))), sum(len(v) for p in points(read_epochs(str(live))).values() for _, v in p)
    parent, kids = _children(client, "main_grid")
    assert parent.info.status == "RUNNING" and all(k.info.status == "RUNNING" for k in kids.values())
    _mlflow_equals_parquet(client, live, kids)
    _progress(live, full)
    assert export_main([str(live), "--to", "mlflow", "--tracking-uri", uri]) == 0   # the sweep went on
    assert export_main([str(live), "--to", "mlflow", "--tracking-uri", uri]) == 0   # and again: nothing new
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].endswith(f"{n} runs (0 final), {n} new runs, {n_points} new points"), out
    assert out[-1].endswith("0 new runs, 0 new points"), out
    parent, kids = _children(client, "main_grid")
    assert parent.info.status == "FINISHED" and all(k.info.status == "FINISHED" for k in kids.values())
    assert {k.data.tags["initmem.status"] for k in kids.values()} == {"completed"}
    _mlflow_equals_parquet(client, full, kids)


def _tb_scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_tensorboard_export_one_event_run_per_run_id_and_no_point_twice(roots, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    full, live = roots
    logdir = tmp_path / "tb"
    assert export_main([str(live), "--to", "tensorboard", "--logdir", str(logdir)]) == 0
    _progress(live, full)
    for _ in range(2):
        assert export_main([str(live), "--to", "tensorboard", "--logdir", str(logdir)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("0 new runs, 0 new points")
    runs, epochs = read_runs(str(full)), read_epochs(str(full))
    assert sorted(p.name for p in (logdir / "main_grid").iterdir()) == sorted(runs["run_id"])
    for rid, mine in epochs.groupby("run_id"):
        mine = mine.sort_values("epoch")
        for tag in ("train_loss", "val_acc", "t_adapt", "lr"):
            got = _tb_scalars(logdir / "main_grid" / rid, tag)
            assert [s for s, _ in got] == list(mine["epoch"]), (rid, tag)           # every epoch, once
            np.testing.assert_allclose([v for _, v in got], mine[tag], rtol=1e-6)  # float32 in event files


def test_export_refuses_bad_input_before_touching_a_tracker(tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_main([str(tmp_path / "nope"), "--to", "tensorboard", "--logdir", str(tmp_path / "tb")])
    assert "ROOT: " in capsys.readouterr().err and not (tmp_path / "tb").exists()
    with pytest.raises(SystemExit):
        export_main([str(tmp_path), "--to", "wandb"])
    assert "invalid choice: 'wandb'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_main([str(tmp_path), "--to", "tensorboard", "--watch", "0"])
    assert "--watch: 0.0 is not allowed" in capsys.readouterr().err
