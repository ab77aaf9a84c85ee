"""python -m tune_jobs status, and the driver's progress line, on storage built to a known state.

    python -m pytest tests/test_tune_status.py -q        # seconds, no Ray cluster

The storage is what a sweep interrupted halfway leaves (written with the results writer as
train_pack writes it): packs finished (one with an early-stopped and a diverged run), a pack
stopped mid-way with its runs still `running`, packs never started, and a Tune error file. The
expected counts, rates and ETA are computed here from the rows written, not by the module.
"""

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from initmem.results import ResultsWriter
from tune_jobs import status as st
from tune_jobs.grids import experiment_from_spec
from tune_jobs.planner import Device, make_plan, pack_labels
from tune_jobs.progress import ProgressLine
from tune_jobs.runner import save_plan
from tune_jobs.standin import _run_row, fake_epoch_row

REPO = Path(__file__).resolve().parents[1]
SPEC = {"name": "status_grid", "fixed": {"dataset": "synthetic", "epochs": 6, "width": 0.125, "train_subset": 64,
                                         "eval_subset": 32},
        "axes": {"optimizer": ["sgd", "adam", "adamw", "muon"], "batch_size": [32, 64], "sigma_w": [0.5, 2.0]}}
EPOCH_S = {"sgd": 10.0, "adam": 20.0}  # seconds per epoch of a pack, by optimizer


def _write_pack(w: ResultsWriter, pid, pack, last_epoch, statuses, epoch_s):
    """Rows as train_pack writes them: epochs 0..last_epoch (wall_time = epoch * epoch_s), runs rows."""
    history = {r.run_id: [dict(fake_epoch_row(r, r.run_id, e), wall_time=e * epoch_s) for e in range(last_epoch + 1)]
               for r in pack}
    w.write_epochs(pid, [row for rows in history.values() for row in rows])
    runs = []
    for r, s in zip(pack, statuses):
        row = _run_row(r, pid, s, history[r.run_id])
        row["wall_time_s"] = last_epoch * epoch_s
        runs.append(row)
    w.write_runs(pid, runs)


@pytest.fixture()
def halfway(tmp_path):
    """An experiment folder of 8 packs x 2 runs x 6 epochs: 3 finished, 1 at epoch 3 of 6, 4 not started."""
    exp = experiment_from_spec(SPEC)
    runs = exp.runs("full")
    plan = make_plan("status_grid", "full", runs, Device("cpu", "cpu", 0.0), 2)
    root = tmp_path / "store" / "status_grid"
    root.mkdir(parents=True)
    save_plan(plan, str(root))
    w = ResultsWriter(str(root))
    pids, packs = plan.pack_ids, plan.packs
    by_opt = {}
    for i, p in enumerate(packs):
        by_opt.setdefault(p[0].optimizer, []).append(i)
    sgd, adam = by_opt["sgd"], by_opt["adam"]
    # sgd b32, sgd b64: finished (one run early-stopped, one diverged); adam b32 finished; adam b64 at epoch 3
    _write_pack(w, pids[sgd[0]], packs[sgd[0]], 6, ["completed", "completed"], EPOCH_S["sgd"])
    _write_pack(w, pids[sgd[1]], packs[sgd[1]], 6, ["early_stopped", "diverged"], EPOCH_S["sgd"])
    _write_pack(w, pids[adam[0]], packs[adam[0]], 6, ["completed", "completed"], EPOCH_S["adam"])
    _write_pack(w, pids[adam[1]], packs[adam[1]], 3, ["running", "running"], EPOCH_S["adam"])
    labels = dict(zip(pids, pack_labels(packs)))
    failed = root / "tune" / f"{labels[pids[adam[1]]]}_{pids[adam[1]][:8]}"
    failed.mkdir(parents=True)
    (failed / "error.txt").write_text("Traceback ...\nRuntimeError: node lost\n")
    return root, plan, {"sgd": sgd, "adam": adam}


def _expected_eta_s():
    """Independent: per-trial rates from the rows written, remaining run-epochs, 1 pack running."""
    rate = {"sgd": (2 * 6 + 2 * 6) / (2 * 6 * EPOCH_S["sgd"] / 3600),  # run-epochs written / pack-hours
            "adam": (2 * 6 + 2 * 3) / ((6 + 3) * EPOCH_S["adam"] / 3600)}
    # groups are optimizer x batch size; sgd-b32 and sgd-b64 have the sgd rate, adam-b32 / adam-b64 adam's
    # (adam-b32 alone: 12 run-epochs in 60 s; adam-b64: 6 in 60 s)
    group_rate = {"sgd-b32": 12 / (60 / 3600), "sgd-b64": 12 / (60 / 3600), "adam-b32": 12 / (120 / 3600),
                  "adam-b64": 6 / (60 / 3600)}
    assert rate["sgd"] == group_rate["sgd-b32"]
    mean = sum(group_rate.values()) / 4
    left_h = 6 / group_rate["adam-b64"] + 4 * 12 / mean  # adam-b64: 12 - 6 left; adamw, muon x 2 batch sizes
    return 3600 * left_h / 1


def test_status_of_a_sweep_interrupted_halfway(halfway):
    root, plan, _ = halfway
    s = st.scan(str(root))
    assert s.runs == 16 and s.finished == 6 and s.packs_running == 1
    g = {x.name: x for x in s.groups}
    assert set(g) == {"sgd-b32", "sgd-b64", "adam-b32", "adam-b64", "adamw-b32", "adamw-b64", "muon-b32", "muon-b64"}
    assert dict(g["sgd-b64"].counts) == {"early_stopped": 1, "diverged": 1}
    assert dict(g["adam-b64"].counts) == {"running": 2} and dict(g["muon-b32"].counts) == {"not_started": 2}
    assert (g["adam-b64"].run_epochs_done, g["adam-b64"].run_epochs_total) == (6, 12)
    assert s.run_epochs_done == 3 * 12 + 6 and s.run_epochs_total == 16 * 6
    assert g["adam-b32"].rate_per_h == pytest.approx(12 / (120 / 3600))
    assert s.eta_s() == pytest.approx(_expected_eta_s())
    assert [f.pack_id for f in s.failures if not f.finished] == [plan.pack_ids[plan.packs.index(
        next(p for p in plan.packs if p[0].optimizer == "adam" and p[0].batch_size == 64))]]
    assert s.last_write is not None and abs(s.last_write - time.time()) < 600

    via_uri = st.scan(f"file://{root}")  # a pyarrow URI reads the same (s3://, gs:// go the same way)
    assert (via_uri.finished, via_uri.run_epochs_done, via_uri.eta_s()) == (s.finished, s.run_epochs_done, s.eta_s())
    assert st.experiment_roots(f"file://{root.parent}") == [f"file://{root}"]

    text = st.format_status(s)
    assert "6/16 runs finished, 42/96 run-epochs (44%)" in text
    assert f"eta         {st.fmt_duration(_expected_eta_s())} at 1 trial(s) at once" in text
    assert "failed      adam-b64_" in text and str(root / "tune") in text and "error.txt" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("sgd-b64 "))
    assert row.split()[1:8] == ["1", "2", "0", "1", "1", "0", "0"]  # packs runs finished early diverged running not


def test_status_command_reads_storage_without_ray(halfway, tmp_path):
    root, _, _ = halfway
    code = ("import runpy, sys\n"
            f"sys.argv = ['tune_jobs', 'status', {str(root.parent)!r}]\n"
            "try:\n    runpy.run_module('tune_jobs', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'ray' not in sys.modules, 'status imported Ray'\n"
            "print('NO-RAY-OK')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NO-RAY-OK" in proc.stdout and "sweep       status_grid" in proc.stdout  # found under the storage
    assert "6/16 runs finished" in proc.stdout and "eta         " in proc.stdout and "unknown" not in proc.stdout

    bad = subprocess.run([sys.executable, "-m", "tune_jobs", "status", str(tmp_path / "nothing")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_status_watch_refreshes(halfway):
    root, _, _ = halfway
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "tune_jobs", "status", str(root), "--watch", "0.3"],
                            stdout=subprocess.PIPE, text=True, env=env)
    time.sleep(8)
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    assert out.count("sweep       status_grid") >= 2 and "refreshing every 0.3s" in out


def test_status_of_an_empty_sweep_has_no_eta(tmp_path):
    exp = experiment_from_spec(SPEC)
    plan = make_plan("status_grid", "full", exp.runs("full"), Device("cpu", "cpu", 0.0), 2)
    save_plan(plan, str(tmp_path))
    s = st.scan(str(tmp_path))
    assert s.finished == 0 and s.eta_s() is None and s.last_write is None
    text = st.format_status(s)
    assert "eta         unknown" in text and "never" in text


def test_progress_line_counts_this_sessions_work(halfway):
    root, plan, idx = halfway
    sizes = {pid: len(p) for pid, p in zip(plan.pack_ids, plan.packs)}
    line = ProgressLine(str(root), sizes, {pid: 6 for pid in plan.pack_ids})
    assert line.runs_finished == 6 and line.eta_s() is None  # nothing done in this session yet
    running = plan.pack_ids[idx["adam"][1]]
    line.t0 -= 100  # 100 s into the session
    line.epoch(running, 5)  # 2 runs x (5 - 3) epochs = 4 run-epochs this session
    left = 96 - (42 + 4)
    assert line.eta_s() == pytest.approx(100 * left / 4, rel=0.01)
    line.pack_finished(running)
    assert line.runs_finished == 8
    assert line.text().startswith("progress    8/16 runs done, 1m40s elapsed, ETA ")


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_line_is_redrawn_in_place_on_a_terminal(halfway, monkeypatch):
    pytest.importorskip("ray.tune")
    from tune_jobs.progress import progress_callback
    root, plan, _ = halfway
    sizes = {pid: len(p) for pid, p in zip(plan.pack_ids, plan.packs)}
    line = ProgressLine(str(root), sizes, {pid: 6 for pid in plan.pack_ids})
    tty = _Tty()
    monkeypatch.setattr(sys, "stdout", tty)

    class Trial:  # what the callback reads of a Tune trial
        def __init__(self, pid):
            self.config, self.status, self.last_result, self.num_failures, self.path = {"pack_id": pid}, "RUNNING", {}, 0, "/x"

    cb = progress_callback({pid: f"pack{i}" for i, pid in enumerate(plan.pack_ids)}, line, print)
    t = Trial(plan.pack_ids[-1])
    cb.on_trial_start(0, [t], t)
    cb.on_trial_result(0, [t], t, {"epoch": 2, "epochs": 6, "runs": 2, "elapsed_s": 5.0})
    t.status, t.last_result = "TERMINATED", {"n_completed": 2}
    cb.on_trial_complete(0, [t], t)
    cb.on_experiment_end([t])
    text = tty.getvalue()
    # every event line clears the progress line first and ends with a newline; the progress line has none
    assert text.count("\r\033[K") >= 6
    assert "start   pack7 (2 runs)\n" in text and "done    pack7 (2 runs) completed=2\n" in text
    assert "\r\033[Kprogress    8/16 runs done" in text and text.endswith("\n")
    assert "progress    8/16 runs done" not in text.replace("\r\033[Kprogress    8/16 runs done", "")


def test_a_run_that_stops_early_inside_a_running_pack_shows_as_early_stopped(tmp_path):
    """train_pack rewrites the pack's runs rows once a run's fate is known, so status sees it mid-pack."""
    from initmem.config import RunConfig
    from initmem.data import load_splits
    from initmem.results import read_epochs, read_runs
    from initmem.train import train_pack
    base = dict(dataset="synthetic", width=0.0625, train_subset=64, eval_subset=32, batch_size=16, epochs=12,
                patience=1, precision="fp64", optimizer="sgd")
    pack = [RunConfig(**base, lr0=0.5, sigma_w=2.0, seed=0), RunConfig(**base, lr0=1e-3, sigma_w=0.5, seed=1)]
    data = load_splits("synthetic", train_subset=64, eval_subset=32)
    root = str(tmp_path / "r")
    seen_mid_pack = []

    def at_checkpoint(epoch, _dir):   # while the pack trains on: what would `tune_jobs status` read now?
        on_disk = read_runs(root).set_index("run_id")["status"]
        last = read_epochs(root).groupby("run_id")["epoch"].max()
        for r in pack:
            if last[r.run_id] < epoch:     # this run stopped at an earlier epoch: the runs file must say so
                assert on_disk[r.run_id] == "early_stopped", (epoch, r.lr0, on_disk.to_dict())
                seen_mid_pack.append(epoch)
    rows = train_pack(pack, data, results=root, checkpoint_every=1, on_checkpoint=at_checkpoint, log=None)
    assert sorted(r["status"] for r in rows) == ["completed", "early_stopped"]
    assert seen_mid_pack, "no run stopped while its pack-mate trained on: the case this test is about never arose"


def test_status_reads_every_runs_file_at_once_and_lists_code_and_data_versions(halfway, monkeypatch):
    import pyarrow.parquet as pq
    halfway = halfway[0]
    calls = []
    real = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    s = st.scan(str(halfway))
    assert not [c for c in calls if "/runs/" in str(c)]            # the runs files: one dataset read, no per-file read
    text = st.format_status(s)
    assert "code        standin (8 runs)" in text and "data        standin (8 runs)" in text and "MIXED" not in text
    from initmem.results import ResultsWriter, read_runs
    w = ResultsWriter(str(halfway))
    rows = read_runs(str(halfway))
    one = rows[rows["pack_id"] == rows["pack_id"].iloc[0]].to_dict("records")
    w.write_runs(one[0]["pack_id"], [{**r, "code_version": "0123456789ab"} for r in one])
    text = st.format_status(st.scan(str(halfway)))
    assert "0123456789ab (2 runs); standin (6 runs)   <- MIXED" in text
