"""Packs that do not fit, split into smaller ones: after a CUDA out-of-memory error, or a smaller --max-pack-size.

    python -m tune_jobs.main_grid --preset full --device cuda          # re-plans on its own when a pack runs out of memory
    python -m tune_jobs.main_grid --preset full --max-pack-size 32     # a re-run: unstarted stored packs above 32 are split

A trial whose pack runs out of GPU memory (torch.OutOfMemoryError, CUDA's included) frees what it
held, prints why and ends with an `out_of_memory` result instead of an error (Tune would retry the
same pack max_failures times). The driver then replaces that pack in the plan by two halves (equal
sizes, config.group_into_packs), writes plan.json (the halves, and `replaced`: old pack id -> new
ones, so a re-run keeps them and a restored Tune trial of the old pack ends quietly) and trains the
halves; a half that runs out of memory is halved again, and a pack of one run that does not fit is an
error (lower batch_size or width, or a GPU with more memory): never a loop.

Exactly once (docs/results.md): the halves recompute every epoch of their runs from scratch, so the
old pack's files are moved out of runs/ and epochs/ into replanned/<pack_id>/ first (kept, never read
by the results readers): no (run_id, epoch) row is lost, none counted twice.

A smaller --max-pack-size on a re-run splits the stored packs above it that have not started (no runs
file yet) the same way; a started pack keeps its size, because it resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping, Sequence

from initmem.config import RunConfig, group_into_packs, pack_id
from initmem.layout import REPLANNED_DIR
from initmem.results import ResultsWriter


def split_pack(pack: Sequence[RunConfig], cap: int) -> list[list[RunConfig]]:
    """A pack as the fewest equal packs of at most `cap` runs (in its order)."""
    n = math.ceil(len(pack) / max(1, cap))
    return group_into_packs(pack, math.ceil(len(pack) / n))


def out_of_memory_message(pid: str, runs: Sequence[RunConfig], err: BaseException) -> str:
    """What a trial says when its pack ran out of memory: the pack, its size and what happens next."""
    cfg, n = runs[0], len(runs)
    what = (f"pack {pid} ({n} run{'s' if n > 1 else ''}, {cfg.arch} x{cfg.width:g} b={cfg.batch_size} "
            f"{cfg.optimizer} {cfg.effective_precision}{' compiled' if cfg.compile else ''}) ran out of memory "
            f"on {cfg.device}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__}")
    if n == 1:
        return (what + "; a single run does not fit: lower batch_size or width, or use a GPU with more "
                "memory (not retried)")
    halves = [len(p) for p in split_pack(runs, math.ceil(n / 2))]
    return what + f"; the driver re-plans it into {len(halves)} packs of {' and '.join(map(str, halves))} runs"


def train_or_out_of_memory(train_fn: Callable, pid: str, runs: Sequence[RunConfig], data, **kw) -> tuple[list | None, str | None]:
    """(train_fn(runs, data, **kw), None), or (None, the message) when the pack ran out of memory
    (torch.OutOfMemoryError, CUDA's included), after freeing what the attempt held. The trainable
    (tune_jobs/runner.py) and bench/gpu_checks.py train packs through it."""
    import torch
    message = None
    try:
        return train_fn(runs, data, **kw), None
    except torch.OutOfMemoryError as e:
        message = out_of_memory_message(pid, runs, e)
    release_device_memory()      # outside the except: its traceback, and the attempt's tensors, are gone
    return None, message


def release_device_memory() -> None:
    """After an out-of-memory error: collect what the failed attempt left, and return the allocator's
    cached blocks to the device (a reused worker process trains another pack next)."""
    import gc
    gc.collect()
    import torch
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def replace_packs(plan, new_packs: Mapping[str, list[list[RunConfig]]]):
    """The plan with each pack id of new_packs replaced, in place, by its smaller packs (recorded in
    plan.replaced: old id -> new ids)."""
    packs, replaced = [], dict(plan.replaced)
    for pid, pack in zip(plan.pack_ids, plan.packs):
        if pid in new_packs:
            packs += new_packs[pid]
            replaced[pid] = [pack_id(p) for p in new_packs[pid]]
        else:
            packs.append(pack)
    return dataclasses.replace(plan, packs=packs, replaced=replaced)


def replan_out_of_memory(plan, out_of_memory: Mapping[str, str], results: str,
                         out: Callable[[str], None]) -> tuple[object, list[str]]:
    """Halve every pack that ran out of memory (its files set aside); packs of one run are errors.
    Returns (the new plan, the errors); the caller saves the plan."""
    by_id = dict(zip(plan.pack_ids, plan.packs))
    new, errors = {}, []
    for pid, msg in out_of_memory.items():
        pack = by_id[pid]
        out(f"memory      {msg}")
        if len(pack) == 1:
            errors.append(msg)
            continue
        new[pid] = split_pack(pack, math.ceil(len(pack) / 2))
        moved = ResultsWriter(results).set_aside(pid)
        out(f"replan      {pid} -> {', '.join(f'{pack_id(p)} ({len(p)} runs)' for p in new[pid])}"
            + (f"; its {len(moved)} partial file(s) moved to {REPLANNED_DIR}/{pid}/ (the new packs recompute them)"
               if moved else ""))
    return (replace_packs(plan, new) if new else plan), errors


def cap_unstarted_packs(plan, cap: int | None, results: str, out: Callable[[str], None]):
    """A stored plan with its packs above an explicit --max-pack-size split, where they have not started
    (no runs file). Returns the plan (the same object when nothing changes)."""
    if not cap:
        return plan
    writer = ResultsWriter(results)
    big = [(pid, p) for pid, p in zip(plan.pack_ids, plan.packs) if len(p) > cap]
    started = [pid for pid, _ in big if writer.pack_rows(pid)]
    new = {pid: split_pack(p, cap) for pid, p in big if pid not in started}
    if new:
        out(f"replan      --max-pack-size {cap}: {len(new)} stored pack(s) not started yet split into "
            f"{sum(len(v) for v in new.values())} packs")
    if started:
        out(f"replan      --max-pack-size {cap}: {len(started)} started pack(s) keep their size (they resume "
            "from their checkpoints)")
    return replace_packs(plan, new) if new else plan

