"""Ray Tune runner: one trial per pack, resumable from storage, exactly-once Parquet results.

    python -m tune_jobs.main_grid --preset smoke                 # local Ray on this machine's CPUs
    python -m tune_jobs.main_grid --preset full --storage s3://bucket/initmem --device cuda  # on a cluster

Layout under the storage (a local folder or a pyarrow-filesystem URI); the experiment folder is
the Parquet results root of docs/results.md (python -m analysis.report <storage>/<experiment>):
    <storage>/<experiment>/runs/, epochs/  the Parquet results
    <storage>/<experiment>/plan.json       the packs of the first invocation (reused on every re-run)
    <storage>/<experiment>/tune/           Ray Tune's experiment: state, trial checkpoints

Running the same command again on the same storage resumes: packs whose runs all have a final
status in the Parquet are skipped (before Tune starts, and again inside the trial, so a pack is
never retrained even when Tune's own state is lost); the Tune experiment is restored
(Tuner.can_restore -> Tuner.restore(resume_errored=True)) and unfinished or errored trials resume
from their last checkpoint. train_pack writes each epoch row once: on resume from the checkpoint
of epoch k it deletes the pack's epochs files after k before recomputing them.

Joining Ray (cluster addresses, the local default, storage every node reaches) is
tune_jobs/cluster.py; the driver's event and progress lines tune_jobs/progress.py; where a sweep
stands, from the storage alone, tune_jobs/status.py (python -m tune_jobs status <storage>/<experiment>).

Trials get their pack by id: the grid is over pack ids and the run dicts travel once through
tune.with_parameters (Tune's grid generator deep-copies the whole grid for every trial, which is
quadratic in the number of packs when the grid values are the packs themselves).
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence


# Before Ray is imported: no automatic TensorBoard/CSV trial loggers (results are Parquet; they cost
# time per trial and import torch into the driver; _fit adds only the JSON one), no status tables.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Tune forces a state snapshot whenever a trial has made num_to_keep checkpoints since the last one
# and warns when that happens often; with short packs it does, harmlessly.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

from initmem.config import RunConfig  # noqa: E402
from initmem.layout import (PLAN_FILE, experiment_root, is_final, join, plan_packs, read_plan, resolve,  # noqa: E402
                            tune_dir, write_plan)
from initmem.results import ResultsWriter, completed_run_ids, read_runs  # noqa: E402
from initmem.study import Experiment  # noqa: E402
from initmem.registry import loaded_plugins, plugin_sources  # noqa: E402
from tune_jobs.errors import SweepError  # noqa: E402
from tune_jobs.options import DEFAULT_STORAGE, SweepOptions  # noqa: E402  (SweepOptions: the runner's input)
from tune_jobs.cluster import check_address, check_shared_storage, connect_ray  # noqa: E402
from tune_jobs.progress import ProgressLine, progress_callback  # noqa: E402
from tune_jobs.planner import (Device, Plan, detect_device, format_plan, gpu_memory_from_resources,  # noqa: E402
                               make_plan, pack_labels)
from tune_jobs.replan import cap_unstarted_packs, replan_out_of_memory, train_or_out_of_memory  # noqa: E402

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Job:
    """What every trial needs, shipped once to the workers with tune.with_parameters."""
    packs: dict[str, list[dict]]       # pack_id -> run dicts
    root: str                          # the experiment's results root (initmem.layout.experiment_root)
    data: str | None
    download: bool
    checkpoint_every: int | None
    train_fn: Callable | None = None   # None -> initmem.train.train_pack
    verbose: bool = False
    replaced: tuple[str, ...] = ()     # pack ids split into smaller packs (a restored trial of one ends quietly)
    plugins: list = dataclasses.field(default_factory=list)  # initmem.registry.plugin_sources(): loaded first


@dataclass
class SweepResult:
    root: str                          # the experiment's results root
    plan: Plan
    finished_runs: int
    statuses: dict[str, int]
    errors: list[str]
    wall_s: float

    @property
    def n_runs(self) -> int:
        return len(self.plan.runs)

    @property
    def ok(self) -> bool:
        return self.finished_runs == self.n_runs and not self.errors


# --- checks before anything starts -----------------------------------------------------------------

def check_storage(root: str) -> None:
    """Create the experiment folder and write/delete a probe file, or say why not."""
    try:
        fs, path = resolve(root)
        fs.create_dir(path, recursive=True)
        probe = posixpath.join(path, f".write-probe-{os.getpid()}")
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except Exception as e:  # pyarrow raises OSError, ArrowInvalid, ... depending on the filesystem
        raise SweepError(f"storage {root!r} is not writable: {type(e).__name__}: {e}. "
                         "Pass --storage with a writable folder or a URI you have credentials for "
                         "(s3://bucket/path, gs://bucket/path).") from None


def check_data(runs: Sequence[RunConfig], opts: SweepOptions, on_cluster: bool) -> str | None:
    """The data path trials will load (absolute), or None when they resolve it themselves (a dataset
    built in memory, or a cluster, whose workers see their own disks)."""
    from initmem.data import DataError, load_splits, resolve_data_path
    from initmem.datasets import DATASETS
    files = sorted({r.dataset for r in runs if DATASETS[r.dataset].read is not None})
    if not files:
        return None
    if len(files) > 1 and opts.data:
        raise SweepError(f"--data names one dataset's files, but the runs read {files}: run them as separate "
                         "sweeps, or leave --data out so each dataset is found in its default place")
    if on_cluster:  # the driver's disk is not the workers': pass --data as it is on the workers
        return opts.data
    name = files[0]
    where = resolve_data_path(opts.data, name)
    if where is None:
        if not opts.download:
            env = ", or set INITMEM_DATA=PATH" if name == "cifar10" else ""
            raise SweepError(f"{name} not found and this machine has no network to fetch it: pass --data PATH "
                             "(an .npz with x_train/y_train/x_test/y_test, e.g. ../shared/data/cifar10-jpeg75.npz, "
                             f"or a folder in torchvision's format){env}, or add --download.")
        try:
            load_splits(name, download=True)  # once, here, not in every trial at once
        except (DataError, OSError, RuntimeError) as e:
            raise SweepError(f"{name} download failed: {e}") from None
        where = resolve_data_path(None, name)
    where = os.path.abspath(os.path.expanduser(where))
    if not os.path.exists(where):
        raise SweepError(f"data path {where!r} does not exist: pass --data with an existing .npz or "
                         f"folder of {name}" + (", or set INITMEM_DATA" if name == "cifar10" else ""))
    return where


def check_provenance(root: str, runs: Sequence[RunConfig], data: str | None, on_cluster: bool, require: bool,
                     out: Callable[[str], None]) -> None:
    """A re-run whose code or data differ from what wrote the experiment's rows so far warns, naming
    both (initmem.provenance); with --require-same-code it stops. On a cluster the driver cannot read
    the workers' data, so only the code is compared there."""
    from initmem.provenance import code_version, data_id, differences
    try:
        rows = read_runs(root, columns=["code_version", "code_dirty", "data_id"]).to_dict("records")
    except Exception:  # noqa: BLE001 - nothing readable yet: nothing to compare with
        return
    code, dirty = code_version()
    datasets = {r.dataset for r in runs}
    now = data_id(data) if data else (data_id(None) if datasets == {"synthetic"} else None)
    if now is None or on_cluster:
        rows = [{**r, "data_id": None} for r in rows]
    diff = differences(rows, code, dirty, now or "")
    if not diff:
        return
    if require:
        raise SweepError(f"{root} was written by other code or data, and --require-same-code is set: "
                         + "; ".join(diff) + ". Run with the code and data that wrote it, or use another --storage.")
    for d in diff:
        out(f"warning     {d}; its rows and this run's would mix in one experiment "
            "(--require-same-code refuses this)")


# --- plan persistence -----------------------------------------------------------------------------

def save_plan(plan: Plan, root: str) -> None:
    """plan.json of the sweep (initmem.layout.write_plan), with the packs split after running out of
    memory (tune_jobs/replan.py)."""
    write_plan(root, plan.experiment, plan.preset, plan.description, [[r.to_dict() for r in p] for p in plan.packs],
               plan.replaced)


def load_plan(root: str, runs: Sequence[RunConfig]) -> Plan | None:
    """The packs the first invocation planned, or None. They win over a new plan: a re-run with
    another device or pack size keeps them, so Tune's trials and the Parquet pack ids stay valid.
    A different set of runs under the same experiment folder is an error."""
    stored = read_plan(root)
    if stored is None:
        return None
    packs = plan_packs(stored)
    old = {r.run_id for p in packs for r in p}
    new = {r.replace(device=packs[0][0].device).run_id for r in runs}  # precision=auto hashes per device
    if old != new:
        raise SweepError(
            f"{root} holds experiment {stored['experiment']!r} with a different set of runs "
            f"({len(old):,} stored, {len(new):,} now; {len(new - old):,} new, {len(old - new):,} gone). "
            "Use another --storage, or the same options (--preset, --set) as the first run.")
    device = Device(packs[0][0].device, packs[0][0].device, 0.0)
    return Plan(stored["experiment"], stored["preset"], [r for p in packs for r in p], packs, device, None,
                stored.get("description", ""), stored.get("replaced", {}))


def finished_packs(root: str, plan: Plan) -> set[str]:
    """Pack ids whose runs all have a final status in the Parquet (never trained again)."""
    try:
        done = completed_run_ids(root)
    except Exception:  # noqa: BLE001 - unreadable results (a missing folder reads as empty): nothing is finished
        return set()
    return {pid for pid, p in zip(plan.pack_ids, plan.packs) if all(r.run_id in done for r in p)}


# --- the trainable (runs on the workers) ------------------------------------------------------------

_DATA_CACHE: dict[tuple, Any] = {}  # per worker process: loaded once, reused by every trial (reuse_actors)


def _load_data(dataset: str, path: str | None, train_subset: int, eval_subset: int, download: bool):
    key = (dataset, path, train_subset, eval_subset)
    if key not in _DATA_CACHE:
        from initmem.data import load_splits
        if len(_DATA_CACHE) >= 2:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = load_splits(dataset, path, train_subset=train_subset, eval_subset=eval_subset,
                                       download=download)
    return _DATA_CACHE[key]


def trial_runs(run_dicts: Sequence[dict], device: str) -> list[RunConfig]:
    """The planned runs of a pack, moved to the device the trial was given, computing what was planned:
    the precision is pinned first (precision=auto resolves per device; a CPU-planned run would turn
    into tf32 on a GPU, a new run_id and pack_id the plan never sees finish)."""
    runs = [RunConfig.from_dict(d) for d in run_dicts]
    return [r.replace(device=device, precision=r.effective_precision) if r.device != device else r for r in runs]


def pack_trainable(config: dict, job: Job) -> None:
    """Train one pack: resume from Tune's checkpoint if any, report every checkpoint to Tune."""
    import ray
    from ray import tune

    if job.plugins:  # the driver's plugins, shipped as text: the same registrations on every node
        from initmem.registry import load_shipped
        load_shipped(job.plugins, os.path.join(tempfile.gettempdir(), f"initmem-plugins-{os.getpid()}"))
    pid = config["pack_id"]
    if pid in job.replaced:  # a restored trial of a pack since split into smaller packs (trials of their own)
        tune.report({"replanned": True})
        return
    if pid not in job.packs:
        raise SweepError(f"pack {pid} is not in this sweep's plan (was plan.json replaced?)")
    device = "cuda" if ray.get_gpu_ids() else "cpu"  # what this trial was given, whatever was planned
    runs = trial_runs(job.packs[pid], device)
    cfg = runs[0]
    writer = ResultsWriter(job.root)
    done = writer.finished_rows(pid)
    if done:  # finished before Tune knew: do not retrain (nor load the data)
        tune.report({"epoch": cfg.epochs, "epochs": cfg.epochs, "runs": len(runs), "skipped": True,
                     **_status_counts(done)})
        return
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    import torch
    torch.set_num_threads(max(1, int(cpus)))
    # job.data None: load_splits looks at $INITMEM_DATA, then the cache, on the worker
    data = _load_data(cfg.dataset, job.data, cfg.train_subset, cfg.eval_subset, job.download)
    if job.train_fn is None:
        from initmem.train import train_pack as train_fn
    else:
        train_fn = job.train_fn
    start = time.time()
    ckpt_dir = tempfile.mkdtemp(prefix=f"initmem-{pid}-")
    try:
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            checkpoint.to_directory(ckpt_dir)

        def on_checkpoint(epoch: int, directory) -> None:
            tune.report({"epoch": int(epoch), "epochs": cfg.epochs, "runs": len(runs),
                         "elapsed_s": time.time() - start},
                        checkpoint=tune.Checkpoint.from_directory(str(directory)))

        rows, out_of_memory = train_or_out_of_memory(
            train_fn, pid, runs, data, results=writer, checkpoint_dir=ckpt_dir, checkpoint_every=job.checkpoint_every,
            on_checkpoint=on_checkpoint, log=print if job.verbose else None)
        if out_of_memory is not None:  # a clear result, not an error Tune would retry as it is
            print(f"[{pid}] {out_of_memory}", flush=True)
            tune.report({"runs": len(runs), "out_of_memory": out_of_memory})   # the driver re-plans the pack
            return
        tune.report({"epoch": max(int(r["epochs_done"] or 0) for r in rows), "epochs": cfg.epochs,
                     "runs": len(runs), "elapsed_s": time.time() - start, **_status_counts(rows)})
    finally:
        shutil.rmtree(ckpt_dir, ignore_errors=True)


def _status_counts(rows: Sequence[dict]) -> dict[str, int]:
    return {f"n_{k}": v for k, v in Counter(r["status"] for r in rows).items()}


# --- Ray --------------------------------------------------------------------------------------------

def trial_resources(device: Device, opts: SweepOptions) -> dict[str, float]:
    if opts.resources is not None:
        return dict(opts.resources)
    res = {"cpu": opts.cpus_per_trial}
    if device.kind == "cuda":
        res["gpu"] = 1
    return res


# --- the sweep ----------------------------------------------------------------------------------------

def trial_device(opts: SweepOptions, cluster_gpus: float | None = None, slots: int = 0,
                 gpu_memory_gb: float | None = None) -> Device:
    """The device the packs are planned for: the options, else what the cluster (or this machine) has."""
    return detect_device(opts.device, opts.gpu_memory_gb or gpu_memory_gb, opts.cpus_per_trial, slots,
                         cluster_gpus, opts.efficiency)


def run_sweep(exp: Experiment, preset: str, opts: SweepOptions, train_fn: Callable | None = None,
              out: Callable[[str], None] = print) -> SweepResult:
    """Plan, check, and run (or with opts.dry_run only print) one experiment preset."""
    t0 = time.time()
    label = exp.label(preset)
    storage = opts.storage or DEFAULT_STORAGE
    if opts.storage is None:
        out(f"storage     {storage} (default; pass --storage PATH_OR_URI to choose)")
    root = experiment_root(storage, label)  # resolved once; everything of the sweep lives under it
    runs = exp.runs(preset, opts.overrides)  # ConfigError before anything starts

    if opts.dry_run:
        plan = make_plan(label, preset, runs, trial_device(opts, slots=_local_slots(opts)), opts.max_pack_size,
                         exp.description)
        out(format_plan(plan, len(finished_packs(root, plan))))
        out(f"storage     {root}")
        out("dry run     nothing trained; drop --dry-run to start")
        return SweepResult(root, plan, 0, {}, [], time.time() - t0)

    on_cluster = bool(opts.address or os.environ.get("RAY_ADDRESS"))
    data = check_data(runs, opts, on_cluster)              # bad input fails before any folder is made
    if opts.address:
        check_address(opts.address)                        # nothing listening: fail at once
    existed = _exists(root)
    check_storage(root)
    try:
        return _run_checked(exp, preset, label, runs, root, data, on_cluster, opts, train_fn, out, t0)
    except SweepError:
        if not existed:
            _remove_if_empty(root)                         # a sweep that never started leaves nothing behind
        raise


def _exists(root: str) -> bool:
    import pyarrow.fs as pafs
    fs, path = resolve(root)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _remove_if_empty(root: str) -> None:
    if "://" in root:
        return  # an object store has no empty folders to leave behind
    try:
        os.rmdir(root)   # only if empty
    except OSError:
        pass


def _run_checked(exp, preset, label, runs, root, data, on_cluster, opts, train_fn, out, t0) -> SweepResult:
    """run_sweep once the input is checked and the results root exists."""
    if data:
        out(f"data        {data}")
    stored = load_plan(root, runs)
    if stored is not None:
        check_provenance(root, runs, data, on_cluster, opts.require_same_code, out)
    done = finished_packs(root, stored) if stored is not None else set()
    if stored is not None and len(done) == len(stored.packs):
        out(f"nothing to train: every pack of {label} in {root} is already finished")
        return _summarize(stored, root, [], time.time() - t0, out)
    started = connect_ray(opts, out)
    try:
        import ray
        if not started:  # a cluster: every node must reach a local --storage path (before any trial)
            check_shared_storage(root, out)
        res = ray.cluster_resources()
        device = trial_device(opts, cluster_gpus=res.get("GPU", 0), gpu_memory_gb=gpu_memory_from_resources(res))
        per_trial = trial_resources(device, opts)
        slots = int(min(res.get(k.upper(), 0) // v for k, v in per_trial.items() if v > 0))
        if opts.max_concurrent:
            slots = min(slots, opts.max_concurrent)
        device = dataclasses.replace(device, slots=max(slots, 0))
        if stored is not None:  # its packs win: Tune's trials and the Parquet pack ids stay valid
            plan = dataclasses.replace(stored, device=device)
            out(f"plan        the packs of the first run ({join(root, PLAN_FILE)})")
            capped = cap_unstarted_packs(plan, opts.max_pack_size, root, out)  # an explicit smaller cap
            if capped is not plan:
                plan = capped
                save_plan(plan, root)
        else:
            plan = make_plan(label, preset, runs, device, opts.max_pack_size, exp.description)
            save_plan(plan, root)
            done = finished_packs(root, plan)
        out(format_plan(plan, len(done)))
        out(f"storage     {root}")
        todo = [pid for pid in plan.pack_ids if pid not in done]
        job = Job(_job_packs(plan), root, data, opts.download, opts.checkpoint_every, train_fn, opts.verbose,
                  tuple(plan.replaced), plugin_sources())
        plan, errors = _fit(plan, job, todo, opts, out) if todo else (plan, [])
        if not todo:
            out("nothing to train: every pack of this experiment is already finished")
    finally:
        if started:
            import ray
            ray.shutdown()
    return _summarize(plan, root, errors, time.time() - t0, out)


def _job_packs(plan: Plan) -> dict[str, list[dict]]:
    """pack_id -> run dicts: what the trials look their pack up in."""
    return {pid: [r.to_dict() for r in p] for pid, p in zip(plan.pack_ids, plan.packs)}


def _fit(plan: Plan, job: Job, todo: list[str], opts: SweepOptions,
         out: Callable[[str], None]) -> tuple[Plan, list[str]]:
    """Train the todo packs as Tune trials, restoring the Tune experiment where there is one. A pack that
    ran out of memory is replaced by its halves in the plan (saved: re-runs keep them) and they train in
    the next round; a single run that does not fit is an error. Returns (the plan, the errors)."""
    from ray import tune
    errors: list[str] = []
    given_up: set[str] = set()           # single runs that do not fit the device
    tune_path = tune_dir(job.root)
    restore = tune.Tuner.can_restore(tune_path)
    while todo:
        grid = _tune_round(plan, job, todo, tune_path, opts, out, restore)
        round_errors = _errors(grid)
        errors += round_errors
        out_of_memory = {r.config["pack_id"]: r.metrics["out_of_memory"] for r in grid
                         if (r.metrics or {}).get("out_of_memory") and r.config.get("pack_id") in plan.pack_ids}
        if out_of_memory:
            plan, too_big = replan_out_of_memory(plan, out_of_memory, job.root, out)
            errors += too_big
            given_up |= {pid for pid in out_of_memory if pid in plan.pack_ids}
            save_plan(plan, job.root)
            job = dataclasses.replace(job, packs=_job_packs(plan), replaced=tuple(plan.replaced))
        finished = finished_packs(job.root, plan)
        unfinished = [pid for pid in plan.pack_ids if pid not in finished and pid not in given_up]
        tried = {r.config.get("pack_id") for r in grid}
        if restore:
            if round_errors:
                break
            stale = [pid for pid in unfinished if pid in tried]
            if stale:  # Tune's state says these are done but the Parquet does not have them (results deleted?)
                out(f"tune        {len(stale)} pack(s) unfinished in the Parquet though Tune finished them: new trials")
            todo = unfinished
        else:            # every pack of this round was tried: what is left are the halves of those that did not fit
            todo = [pid for pid in unfinished if pid not in tried]
        restore = False
    return plan, errors


def _tune_round(plan: Plan, job: Job, todo: list[str], tune_path: str, opts: SweepOptions,
                out: Callable[[str], None], restore: bool):
    """One Tuner.fit: the restored Tune experiment, or new trials for the todo packs. Its ResultGrid."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback  # result.json per trial: ResultGrid metrics

    labels = dict(zip(plan.pack_ids, pack_labels(plan.packs)))
    sizes = {pid: len(p) for pid, p in zip(plan.pack_ids, plan.packs)}
    line = ProgressLine(job.root, sizes, {pid: p[0].epochs for pid, p in zip(plan.pack_ids, plan.packs)})
    trainable = tune.with_resources(tune.with_parameters(pack_trainable, job=job),
                                    trial_resources(plan.device, opts))
    storage_path, name = posixpath.split(tune_path)  # a local path or a URI
    if restore:
        out(f"tune        resuming the Tune experiment in {tune_path} (unfinished and errored trials "
            "continue from their last checkpoint)")
        return tune.Tuner.restore(tune_path, trainable=trainable, resume_errored=True).fit()
    out(f"tune        {len(todo):,} trial(s), {trial_resources(plan.device, opts)} each, "
        f"max concurrent {opts.max_concurrent or 'by resources'}, checkpoint every "
        f"{opts.checkpoint_every or 'epochs // 30'} epoch(s), max_failures {opts.max_failures}")
    tuner = tune.Tuner(
        trainable,
        param_space={"pack_id": tune.grid_search(todo)},
        tune_config=tune.TuneConfig(
            reuse_actors=True,  # a fresh worker process per trial costs seconds; data stays cached
            max_concurrent_trials=opts.max_concurrent,
            trial_name_creator=lambda t: labels.get(t.config["pack_id"], t.config["pack_id"]),
            trial_dirname_creator=lambda t: f"{labels.get(t.config['pack_id'], 'pack')}_{t.config['pack_id'][:8]}",
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=storage_path, verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=opts.max_failures),
            callbacks=[progress_callback(labels, line, out), JsonLoggerCallback()],
        ),
    )
    return tuner.fit()


def _errors(grid) -> list[str]:
    msgs = []
    for r in grid:
        if r.error is not None:
            first = str(r.error).strip().splitlines()
            msgs.append(f"{r.config.get('pack_id', '?')}: {first[-1] if first else r.error} ({r.path})")
    return msgs


def _summarize(plan: Plan, root: str, errors: list[str], wall: float, out: Callable[[str], None]) -> SweepResult:
    df = read_runs(root, columns=["run_id", "status"])
    df = df[df["run_id"].isin({r.run_id for r in plan.runs})]
    statuses = {k: int(v) for k, v in df["status"].value_counts().items()}
    finished = sum(is_final(s) for s in df["status"])   # an empty frame sums to 0, not ''
    out(f"finished    {finished:,}/{len(plan.runs):,} runs "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(statuses.items())) or 'none'}) in {wall:.0f}s")
    for e in errors:
        out(f"error       {e}")
    if errors or finished < len(plan.runs):
        out("resume      re-run the same command: finished packs are skipped, the rest resume from checkpoints")
    out(f"results     {_show(root)}")
    plugins = "".join(f" --plugin {p}" for p in loaded_plugins())
    out(f"rebuild     python -m analysis.report {_show(root)}{plugins} -o report.html   (the report command)")
    return SweepResult(root, plan, finished, statuses, errors, wall)


def _show(path: str) -> str:
    """A path as the user can paste it: relative to the current folder when it is under it."""
    if "://" in path:
        return path
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else path


def _local_slots(opts: SweepOptions) -> int:
    if opts.address or opts.device == "cuda":
        return opts.gpus or 0  # unknown unless --gpus says: depends on the cluster
    return max(1, int((opts.num_cpus or os.cpu_count() or 1) // opts.cpus_per_trial))
