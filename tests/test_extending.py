"""docs/extending.md, run as written: its plugin file and grid come from the page's code blocks and its
commands run in a temporary folder (so the page cannot fall behind the code); Lion against NumPy; a
pack of Lion runs against each run alone; each kind of registration from a file outside the package
through the command line.

    python -m pytest tests/test_extending.py -m "slow or not slow"     # about 2 minutes on 2 CPU cores
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from initmem.config import ConfigError, RunConfig
from initmem.registry import load_plugin, unload_plugin

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "extending.md"
PLUGIN, GRID = "my_science.py", "mixer_lion.yaml"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
TINY = ["--dataset", "synthetic", "--train-subset", "64", "--eval-subset", "32", "--batch-size", "32", "--epochs", "1"]


def blocks(text: str) -> list[tuple[str, str]]:
    """The page's fenced code blocks as (info string, body)."""
    return [(m.group(1).strip(), m.group(2)) for m in re.finditer(r"^```([^\n]*)\n(.*?)^```", text, re.S | re.M)]


def block(title: str) -> str:
    """The block whose info string names the file, e.g. ```python my_science.py."""
    found = [body for info, body in blocks(DOC.read_text()) if info.split()[1:] == [title]]
    assert len(found) == 1, f"docs/extending.md has {len(found)} blocks titled {title!r}"
    return found[0]


def commands() -> list[list[str]]:
    """Every command of the page's bash blocks, in order (continued lines joined), as argv."""
    out = []
    for info, body in blocks(DOC.read_text()):
        if info == "bash":
            for line in body.replace("\\\n", " ").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    out.append(shlex.split(line))
    return out


def run(argv: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    argv = [sys.executable if argv[0] == "python" else argv[0]] + argv[1:]
    proc = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{shlex.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """A folder outside the package holding the page's plugin and grid, as a user would save them."""
    folder = tmp_path_factory.mktemp("my_project")
    (folder / PLUGIN).write_text(block(PLUGIN))
    (folder / GRID).write_text(block(GRID))
    return folder


@pytest.fixture
def science(example):
    """The page's plugin loaded in this process; its entries taken out again afterwards."""
    path = str(example / PLUGIN)
    module = sys.modules[load_plugin(path)]
    yield module
    unload_plugin(path)


def _complete(runs: pd.DataFrame, n: int) -> None:
    assert len(runs) == n and set(runs["status"]) == {"completed"}, runs[["run_id", "status"]]
    for col in ("run_id", "test_acc", "val_loss_best", "tau_best", "w_norm_init", "w_norm_best", "n_params",
                "code_version", "data_id"):
        assert runs[col].notna().all(), col


def test_the_page_holds_a_plugin_a_grid_and_the_commands_that_use_them():
    text = block(PLUGIN)
    for call in ("register_model(", "register_optimizer(", "register_dataset(", "register_init("):
        assert call in text, call
    assert "plugins: [my_science.py]" in block(GRID)
    heads = [" ".join(c[:3]) for c in commands()]
    for head in ("python -m initmem", "python -m tune_jobs", "python -m analysis"):
        assert any(h.startswith(head) for h in heads), (head, heads)


@pytest.mark.slow
def test_the_pages_commands_run_as_written(example):
    from initmem.results import read_epochs, read_runs
    outputs = [run(argv, example, timeout=600).stdout for argv in commands()]
    fields = outputs[0]
    for name in ("mixer", "stripes", "lion", "uniform"):
        assert re.search(rf"^    {name} .*\[plugin my_science.py\]$", fields, re.M), name
    mine = read_runs(str(example / "results" / "mine"))              # initmem train: all four plugin names
    _complete(mine, 2)
    assert set(mine["arch"]) == {"mixer"} and set(mine["optimizer"]) == {"lion"}
    assert set(mine["dataset"]) == {"stripes"} and set(mine["init"]) == {"uniform"}
    assert set(mine["weight_decay"]) == {1e-3}                        # lion's own default decay
    sweep = example / "results" / "mixer_lion_smoke"                  # the sweep: Ray on loopback
    runs, epochs = read_runs(str(sweep)), read_epochs(str(sweep))
    _complete(runs, 4)
    assert (runs["t_adapt"] > 0).all()                               # lion's clock, from its family
    assert set(runs["optimizer"]) == {"lion", "adamw"} and set(runs["init"]) == {"paper", "uniform"}
    assert len(epochs) == 4 * 3 and epochs["val_loss"].notna().all()   # epochs 0, 1, 2 of every run
    for report in (sweep / "report.html", example / "report.html"):   # the sweep's, and python -m analysis.report --plugin
        text = report.read_text()
        for name in ("mixer_lion", "lion", "mixer", "uniform"):
            assert name in text, (report, name)


def _numpy_lion(w, m, grads, lrs, wd, b1=0.9, b2=0.99):
    """Lion as Chen et al. write it, one run, float64: c = b1 m + (1-b1) g; w -= lr (sign(c) + wd w);
    m = b2 m + (1-b2) g."""
    w, m = w.copy(), m.copy()
    for g, lr in zip(grads, lrs):
        c = b1 * m + (1 - b1) * g
        w = w - lr * (np.sign(c) + wd * w)
        m = b2 * m + (1 - b2) * g
    return w, m


def test_lion_matches_an_independent_numpy_lion(science):
    from initmem.optim import PackedOptimizer
    shapes = {"conv": (4, 2, 3, 3), "dense": (3, 5), "bias": (4,), "norm": (4,)}
    M, steps, stop = 3, 6, 4                                         # run 2 stops after `stop` updates
    gen = torch.Generator().manual_seed(0)
    init = {n: torch.randn((M,) + s, generator=gen, dtype=torch.float64) for n, s in shapes.items()}
    grads = [{n: torch.randn((M,) + s, generator=gen, dtype=torch.float64) for n, s in shapes.items()}
             for _ in range(steps)]
    lr0, wd = np.array([1e-2, 3e-2, 5e-3]), np.array([1e-3, 0.5, 0.1])
    lrs = [lr0 * (1 - 0.1 * k) for k in range(steps)]
    params = {n: v.clone() for n, v in init.items()}
    o = PackedOptimizer(list(params.items()), {n: n for n in shapes}, "lion")
    for k in range(steps):
        for n, p in params.items():
            p.grad = grads[k][n].clone()
        o.step(lrs[k], wd, np.array([True, True, k < stop]))
    for m in range(M):
        n_steps = stop if m == 2 else steps
        for n in shapes:
            w, mom = _numpy_lion(init[n][m].numpy(), np.zeros(shapes[n]), [g[n][m].numpy() for g in grads[:n_steps]],
                                 [lr[m] for lr in lrs[:n_steps]], wd[m])
            np.testing.assert_allclose(params[n][m].numpy(), w, rtol=1e-13, atol=1e-15, err_msg=f"run {m} {n}")
            np.testing.assert_allclose(o.state[n]["m"][m].numpy(), mom, rtol=1e-13, atol=1e-15, err_msg=f"{m} {n} m")


def test_a_pack_of_lion_runs_equals_each_run_alone(science):
    from initmem.data import load_splits
    from initmem.train import train_pack
    base = dict(arch="mixer", optimizer="lion", dataset="synthetic", train_subset=64, eval_subset=32,
                batch_size=16, epochs=2, width=0.125, precision="fp64")
    runs = [RunConfig(**base, sigma_w=s, seed=sd, lr0=lr, weight_decay=wd, init=init)
            for s, sd, lr, wd, init in ((0.5, 0, 1e-3, 1e-3, "uniform"), (2.0, 1, 3e-4, 1e-2, "paper"),
                                        (1.0, 2, 1e-3, 0.0, "uniform"))]
    data = load_splits("synthetic", train_subset=64, eval_subset=32)
    packed = train_pack(runs, data, log=None)
    for r, row in zip(runs, packed):
        alone = train_pack([r], data, log=None)[0]
        for k in ("test_acc", "val_loss_best", "w_norm_best", "w_norm_init", "w_norm_final", "test_loss",
                  "train_acc_final"):
            assert alone[k] == pytest.approx(row[k], rel=1e-9, abs=1e-12), (r.seed, k)
    assert len({row["w_norm_final"] for row in packed}) == 3                # the runs differ


def test_lion_compiles_into_the_steps_one_graph_bit_identical_to_eager(science):
    # a plugin's rule goes into the compiled step as the built-in ones do (tests/test_step.py): one graph,
    # no recompile when a run is frozen, the same weights and slot as the eager step
    import torch._dynamo
    from torch._dynamo.utils import counters
    from initmem.data import load_splits
    from initmem.train import PackTrainer
    torch._dynamo.reset()
    counters.clear()
    data = load_splits("synthetic", train_subset=48, eval_subset=16)
    runs = [RunConfig(dataset="synthetic", train_subset=48, eval_subset=16, batch_size=16, width=1 / 16, epochs=2,
                      optimizer="lion", seed=i, sigma_w=0.5 + i, lr0=1e-3 * (i + 1), precision="fp64", compile=True,
                      l2=1e-3 * (i % 2)) for i in range(3)]
    comp = PackTrainer(runs, data, compile_backend="aot_eager")
    eager = PackTrainer([r.replace(compile=False) for r in runs], data)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for epoch in range(2):
            if epoch == 1:
                comp.active[2] = eager.active[2] = False
            np.testing.assert_array_equal(comp.train_epoch()[0], eager.train_epoch()[0])
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    for p, q in zip(comp.params, eager.params):
        assert torch.equal(p, q)
    for name in comp.opt.state:
        assert torch.equal(comp.opt.state[name]["m"], eager.opt.state[name]["m"]), name
    torch._dynamo.reset()


@pytest.mark.parametrize("kind, flags", [
    ("arch", ["--arch", "mixer", "--width", "0.125"] + TINY),
    ("optimizer", ["--optimizer", "lion", "--arch", "resnet9", "--width", "0.0625"] + TINY),
    ("init", ["--init", "uniform", "--arch", "resnet9", "--width", "0.0625"] + TINY),
    ("dataset", ["--dataset", "stripes", "--data", "data/stripes_alone", "--download", "--arch", "resnet9",
                 "--width", "0.0625", "--train-subset", "64", "--eval-subset", "32", "--batch-size", "32",
                 "--epochs", "1"]),
])
def test_each_kind_registered_outside_the_package_trains_from_the_command_line(example, kind, flags):
    from initmem.results import read_runs
    out = f"results/{kind}_alone"
    run(["python", "-m", "initmem", "train", "--plugin", PLUGIN, *flags, "--sigma-w", "0.5", "2.0", "--out", out],
        example)
    rows = read_runs(str(example / out))
    _complete(rows, 2)
    name = flags[flags.index("--" + kind) + 1]
    assert set(rows[kind]) == {name}


def test_fields_names_each_kinds_plugin_entries(example):
    def listed(stdout: str) -> dict[str, list[str]]:
        """field -> its entry lines, from the "registered" part of `fields`."""
        out, field = {}, None
        for line in stdout[stdout.index("registered ("):].splitlines()[1:]:
            if re.match(r"^  \w+:$", line):
                field = line.strip()[:-1]
                out[field] = []
            elif line.startswith("    ") and not line.startswith("     "):
                out[field].append(line)
        return out
    entries = listed(run(["python", "-m", "initmem", "fields", "--plugin", PLUGIN], example).stdout)
    plugin = {f: [ln.split()[0] for ln in lines if ln.endswith(f"[plugin {PLUGIN}]")] for f, lines in entries.items()}
    assert plugin == {"arch": ["mixer"], "dataset": ["stripes"], "optimizer": ["lion"], "init": ["uniform"]}
    builtin = listed(run(["python", "-m", "initmem", "fields"], example).stdout)
    assert not any("[plugin" in ln for lines in builtin.values() for ln in lines)
    assert [ln.split()[0] for ln in builtin["optimizer"]] == ["sgd", "sgd_momentum", "adam", "adamw", "muon",
                                                             "muon_conv"]


def test_a_bad_name_lists_the_plugins_names_and_the_closest(science):
    for field, bad, good in (("arch", "mixr", "mixer"), ("optimizer", "lino", "lion"), ("dataset", "stripe", "stripes"),
                             ("init", "unifrom", "uniform")):
        with pytest.raises(ConfigError, match=rf"{field}='{bad}' is not allowed: one of \[.*'{good}'\] "
                                              rf"\(did you mean '{good}'\?\)"):
            RunConfig(**{field: bad})
    with pytest.raises(ConfigError, match=r"lion2\.beta_1=1.5 is not allowed: a number in \[0, 1\)"):
        science.register_optimizer(science.OptimizerSpec(
            "lion2", "adaptive", "", {"default": ("m",)}, 6.9, science.lion,
            constants={"beta_1": science.Constant(1.5, "b1", "a number in [0, 1)", lambda v: 0 <= v < 1)}))
