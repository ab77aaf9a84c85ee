"""tune_jobs.runner / cli without a cluster: bad input fails before anything starts; the stand-in
honours train_pack's resume contract; the stored plan guards the storage."""

import os
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from initmem.layout import experiment_root, tune_dir
from initmem.results import read_epochs, read_runs
from initmem.study import EXPERIMENTS
from tune_jobs import cli
from tune_jobs.cluster import check_address, check_grpc
from tune_jobs.errors import SweepError
from tune_jobs.grids import experiment_from_spec
from tune_jobs.planner import Device, make_plan
from tune_jobs.runner import check_storage, load_plan, save_plan
from tune_jobs.standin import instant_train_pack

TINY = {"name": "tiny", "fixed": {"dataset": "synthetic", "epochs": 4, "width": 0.125, "train_subset": 64,
                                  "eval_subset": 32, "batch_size": 32},
        "axes": {"optimizer": ["sgd", "adam"], "sigma_w": [0.5, 2.0]}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(argv, capsys, experiment=None):
    code = cli.main(argv, experiment=experiment)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def ray_started() -> bool:
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


# --- bad input: a clear error, exit status 2, before Ray or any training starts -----------------------

def test_unknown_experiment(capsys, tmp_path):
    code, _, err = run_cli(["nosuch", "--storage", str(tmp_path)], capsys)
    assert code == 2 and "unknown experiment 'nosuch'" in err and "main_grid" in err
    assert not ray_started()


def test_unknown_preset():
    proc = subprocess.run([sys.executable, "-m", "tune_jobs.main_grid", "--preset", "huge"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "invalid choice: 'huge'" in proc.stderr and "smoke" in proc.stderr


def test_unwritable_storage(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, _, err = run_cli(["--storage", str(blocker / "sub"), "--set", "dataset=synthetic"], capsys, "main_grid")
    assert code == 2 and "is not writable" in err and "--storage" in err
    assert not ray_started()
    with pytest.raises(SweepError, match="not writable"):
        check_storage("nosuchscheme://bucket/x")


def test_unreachable_cluster_fails_fast(capsys, tmp_path):
    port = free_port()  # nothing listens there
    t0 = time.perf_counter()
    code, _, err = run_cli(["--storage", str(tmp_path), "--set", "dataset=synthetic",
                            "--address", f"127.0.0.1:{port}"], capsys, "main_grid")
    assert code == 2 and f"cannot reach a Ray cluster at 127.0.0.1:{port}" in err and "ray start --head" in err
    assert time.perf_counter() - t0 < 10
    assert "ray" not in sys.modules or not ray_started()
    with pytest.raises(SweepError, match="not a Ray cluster address"):
        check_address("no-port-here")


def test_invalid_user_grid(capsys, tmp_path):
    grid = tmp_path / "bad.yaml"
    grid.write_text("name: bad\naxes:\n  optimizer: [sgd, rmsprop]\n  sigma_w: [0.1]\n")
    code, _, err = run_cli([str(grid), "--storage", str(tmp_path)], capsys)
    assert code == 2 and "optimizer='rmsprop' is not allowed" in err and "'sgd'" in err
    grid.write_text("name: bad\naxes:\n  sigma: [0.1]\n")
    code, _, err = run_cli([str(grid), "--storage", str(tmp_path)], capsys)
    assert code == 2 and "unknown run field 'sigma'" in err and "sigma_w" in err
    assert not (tmp_path / "bad").exists() and not ray_started()


def test_invalid_override_and_flags(capsys, tmp_path):
    code, _, err = run_cli(["--storage", str(tmp_path), "--set", "precision=fp16"], capsys, "main_grid")
    assert code == 2 and "precision='fp16' is not allowed" in err
    code, _, err = run_cli(["--storage", str(tmp_path), "--set", "oops"], capsys, "main_grid")
    assert code == 2 and "FIELD=VALUE" in err
    code, _, err = run_cli(["--storage", str(tmp_path), "--max-concurrent", "0"], capsys, "main_grid")
    assert code == 2 and "--max-concurrent=0" in err


def test_missing_data_says_how_to_pass_it(capsys, tmp_path, monkeypatch):
    import initmem.datasets
    monkeypatch.delenv("INITMEM_DATA", raising=False)
    monkeypatch.setattr(initmem.datasets, "CACHE", tmp_path / "no_cache")
    code, _, err = run_cli(["--storage", str(tmp_path)], capsys, "main_grid")
    assert code == 2 and "--data" in err and "INITMEM_DATA" in err
    code, _, err = run_cli(["--storage", str(tmp_path), "--data", str(tmp_path / "none.npz")], capsys, "main_grid")
    assert code == 2 and "does not exist" in err
    assert not ray_started()


def test_default_storage_is_said(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(["--dry-run"], capsys, "long_sgd")
    assert code == 0 and "./results (default" in out and str(tmp_path / "results" / "long_sgd_smoke") in out


# --- the stand-in honours the resume contract ---------------------------------------------------------

def test_standin_resume_is_exactly_once(tmp_path):
    runs = experiment_from_spec(TINY).runs("full")[:2]
    clean, broken, ckpt = str(tmp_path / "clean"), str(tmp_path / "broken"), tmp_path / "ckpt"
    instant_train_pack(runs, results=clean, checkpoint_dir=tmp_path / "c0", checkpoint_every=2, log=None)

    class Died(Exception):
        pass

    def die_at_3(epoch, _dir):  # dies after the checkpoint of epoch 2 would be too late: die mid-interval
        if epoch == 4:
            raise Died
    # first attempt: checkpoints at 2, writes epochs 3-4 and dies before on_checkpoint(4) returns
    with pytest.raises(Died):
        instant_train_pack(runs, results=broken, checkpoint_dir=ckpt, checkpoint_every=2, on_checkpoint=die_at_3,
                           log=None)
    (ckpt / "state.json").write_text('{"epoch": 2}')  # as if the checkpoint of epoch 4 never landed
    rows = instant_train_pack(runs, results=broken, checkpoint_dir=ckpt, checkpoint_every=2, log=None)
    assert {r["status"] for r in rows} == {"completed"}
    a = read_epochs(clean).sort_values(["run_id", "epoch"]).reset_index(drop=True)
    b = read_epochs(broken).sort_values(["run_id", "epoch"]).reset_index(drop=True)
    assert len(b) == 2 * 5
    pd.testing.assert_frame_equal(a, b)
    assert len(read_runs(broken)) == 2


# --- the stored plan ------------------------------------------------------------------------------------

def test_stored_plan_wins_and_guards_the_storage(tmp_path):
    exp = experiment_from_spec(TINY)
    runs = exp.runs("full")
    exp_dir = experiment_root(str(tmp_path), exp.label("full"))
    assert exp_dir == str(tmp_path / "tiny") and tune_dir(exp_dir) == str(tmp_path / "tiny" / "tune")
    assert load_plan(exp_dir, runs) is None
    check_storage(exp_dir)
    plan = make_plan("tiny", "full", runs, Device("cpu", "cpu", 8.0, 1, 0.3), max_pack=1)
    save_plan(plan, exp_dir)
    again = load_plan(exp_dir, runs)
    assert [[r.run_id for r in p] for p in again.packs] == [[r.run_id for r in p] for p in plan.packs]
    with pytest.raises(SweepError, match="different set of runs"):
        load_plan(exp_dir, runs[:-1])


def test_uri_paths():
    root = experiment_root("s3://bucket/initmem/", "main_grid")
    assert (root, tune_dir(root)) == ("s3://bucket/initmem/main_grid", "s3://bucket/initmem/main_grid/tune")
    assert experiment_root("~/x", "e") == os.path.join(os.path.expanduser("~"), "x", "e")
    assert EXPERIMENTS["main_grid"].label("smoke") == "main_grid_smoke"


def test_a_trial_on_another_device_keeps_the_planned_run_ids():
    # issue 17, finding 7: a CPU plan keeps precision=auto (fp32 there); moved to a GPU worker, auto
    # turned into tf32, so run_id and pack_id changed and the plan never saw the pack finish
    from initmem.config import pack_id
    from tune_jobs.runner import trial_runs
    exp = experiment_from_spec(TINY)
    for kind in ("cpu", "cuda"):
        plan = make_plan("tiny", "full", exp.runs("full"), Device(kind, kind, 8.0, 1, 0.3), max_pack=2)
        for pack in plan.packs:
            for other in ("cpu", "cuda"):
                moved = trial_runs([r.to_dict() for r in pack], other)
                assert {r.device for r in moved} == {other}
                assert [r.run_id for r in moved] == [r.run_id for r in pack] and pack_id(moved) == pack_id(pack)
                assert [r.effective_precision for r in moved] == [r.effective_precision for r in pack]


# --- packs that do not fit: re-planned into smaller ones (issue 17, finding 2) -------------------------

def _four_run_plan(exp_dir):
    exp = experiment_from_spec(TINY)
    plan = make_plan("tiny", "full", exp.runs("full"), Device("cpu", "cpu", 8.0, 1, 0.3), max_pack=4)
    check_storage(exp_dir)
    save_plan(plan, exp_dir)
    return exp, plan


def test_a_pack_out_of_memory_is_split_in_halves_and_its_partial_files_set_aside(tmp_path):
    from initmem.config import pack_id
    from initmem.results import ResultsWriter, read_epochs
    from tune_jobs.replan import out_of_memory_message, replan_out_of_memory
    exp_dir = str(tmp_path / "tiny")
    exp, plan = _four_run_plan(exp_dir)
    assert [len(p) for p in plan.packs] == [2, 2]              # the adam and sgd groups
    big, other = plan.packs
    instant_train_pack(big, results=exp_dir, checkpoint_dir=tmp_path / "c0", stop_after_epoch=2, log=None)
    instant_train_pack(other, results=exp_dir, checkpoint_dir=tmp_path / "c1", log=None)
    msg = out_of_memory_message(plan.pack_ids[0], big, RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert plan.pack_ids[0] in msg and "2 runs" in msg and "Tried to allocate" in msg and "2 packs of 1 and 1" in msg
    lines = []
    new, errors = replan_out_of_memory(plan, {plan.pack_ids[0]: msg}, exp_dir, lines.append)
    assert not errors and [len(p) for p in new.packs] == [1, 1, 2]
    assert new.replaced == {plan.pack_ids[0]: [pack_id(p) for p in new.packs[:2]]}
    assert sorted(r.run_id for p in new.packs for r in p) == sorted(r.run_id for r in plan.runs)
    # the old pack's rows left the results (the halves recompute them); the other pack's stayed
    epochs = read_epochs(exp_dir)
    assert set(epochs.run_id) == {r.run_id for r in other}
    aside = tmp_path / "tiny" / "replanned" / plan.pack_ids[0]
    assert (aside / "runs.parquet").exists() and sorted(p.name for p in (aside / "epochs").iterdir()) == \
        ["e00000-00001.parquet", "e00002-00002.parquet"]
    assert any("moved to replanned/" in line for line in lines)
    # the halves train; the results are complete and exactly once
    for p in new.packs[:2]:
        instant_train_pack(p, results=exp_dir, log=None)
    epochs = read_epochs(exp_dir)
    assert len(epochs) == 4 * 5 and not epochs.duplicated(["run_id", "epoch"]).any()
    # the stored plan keeps them, and a single run that does not fit is an error, not another split
    save_plan(new, exp_dir)
    again = load_plan(exp_dir, exp.runs("full"))
    assert [[r.run_id for r in p] for p in again.packs] == [[r.run_id for r in p] for p in new.packs]
    assert again.replaced == new.replaced
    one = again.pack_ids[0]
    same, errors = replan_out_of_memory(again, {one: out_of_memory_message(one, again.packs[0], RuntimeError("oom"))},
                                        exp_dir, lines.append)
    assert same is again and len(errors) == 1 and "a single run does not fit" in errors[0]
    assert ResultsWriter(exp_dir).pack_rows(one)                # nothing set aside for it


def test_a_smaller_max_pack_size_splits_unstarted_stored_packs(tmp_path):
    from tune_jobs.replan import cap_unstarted_packs
    exp_dir = str(tmp_path / "tiny")
    _, plan = _four_run_plan(exp_dir)
    instant_train_pack(plan.packs[0], results=exp_dir, checkpoint_dir=tmp_path / "c0", stop_after_epoch=1, log=None)
    lines = []
    capped = cap_unstarted_packs(plan, 1, exp_dir, lines.append)
    assert [len(p) for p in capped.packs] == [2, 1, 1]          # the started pack keeps its size
    assert list(capped.replaced) == [plan.pack_ids[1]]
    assert any("1 started pack(s) keep their size" in line for line in lines)
    assert cap_unstarted_packs(plan, 4, exp_dir, lines.append) is plan
    assert cap_unstarted_packs(plan, None, exp_dir, lines.append) is plan


def _serve_once(reply: bytes | None):
    """A one-connection TCP server on loopback that reads what comes, then sends `reply` (None: stays silent)."""
    import threading
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        conn.recv(1024)
        if reply is not None:
            conn.sendall(reply)
        time.sleep(3)
        conn.close()
        server.close()

    threading.Thread(target=answer, daemon=True).start()
    return f"127.0.0.1:{server.getsockname()[1]}"


def test_grpc_check_tells_a_ray_head_from_other_services():
    """A gRPC server opens with a SETTINGS frame (type 0x04); a silent port, an HTTP/1.1 server and a
    server that sends something else are named as not a Ray head, within the timeout."""
    check_grpc(_serve_once(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x64"))
    for reply in (None, b"HTTP/1.1 400 Bad Request\r\n\r\n", b"\x00\x00\x08\x07\x00\x00\x00\x00\x00"):
        address = _serve_once(reply)
        t0 = time.time()
        with pytest.raises(SweepError, match=rf"{address} accepts connections but is not a Ray head"):
            check_grpc(address, timeout_s=1.0)
        assert time.time() - t0 < 3, reply


def test_cluster_wait_names_why_nothing_answered():
    """slurm/initmem.sbatch waits with `python -m tune_jobs.cluster wait`: an address where no head ever
    answers ends with exit 2 and the reason (not 'no nodes', which hid a wrong token)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "tune_jobs.cluster", "wait", f"127.0.0.1:{port}", "1", "--timeout", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr and ("cannot be joined" in proc.stderr or "no Ray head" in proc.stderr)
    assert time.time() - t0 < 60


def test_study_dry_run_prints_each_mini_with_cpu_and_gpu_estimates(capsys, tmp_path):
    from tune_jobs.study import main as study_main
    assert study_main(["--preset", "mini", "--dry-run", "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name, n in (("main_grid", 120), ("long_sgd", 10), ("lr_l2", 150)):
        block = out[out.index(f"experiment  {name}_mini (mini preset), cut from the full grid"):]
        assert f"runs        {n}\n" in block
        assert "on one trial slot (1 CPU core)" in block.split("experiment  ")[1]
        assert "on one GPU (H100-class" in block.split("experiment  ")[1]
    assert not (tmp_path / "main_grid_mini").exists() and not ray_started()
    assert study_main(["--experiments", "nosuch", "--dry-run"]) == 2
    assert "--experiments ['nosuch'] is not allowed" in capsys.readouterr().err


def test_bad_input_leaves_no_experiment_folder_behind(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code, _, err = run_cli(["--storage", str(tmp_path), "--data", str(tmp_path / "none.npz")], capsys, "main_grid")
    assert code == 2 and not (tmp_path / "main_grid_smoke").exists()
    t0 = time.time()
    code, _, err = run_cli(["--storage", str(tmp_path), "--set", "dataset=synthetic", "--address",
                            f"ray://127.0.0.1:{free_port()}"], capsys, "main_grid")
    assert code == 2 and "cannot reach a Ray cluster" in err and time.time() - t0 < 10
    assert not (tmp_path / "main_grid_smoke").exists() and not ray_started()
