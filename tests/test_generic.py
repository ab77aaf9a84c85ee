"""initmem.generic: a plain one-run PyTorch model, registered by name, trains in packs through
torch.func; a run in a pack equals the run trained alone; BatchNorm models train in packs of one."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from initmem.architectures import MODELS, cost, register_model
from initmem.config import RunConfig
from initmem.data import load_splits
from initmem.generic import FuncPack
from initmem.train import train_pack


class TinyMlp(nn.Module):
    """Flatten -> Linear -> LayerNorm -> ReLU -> scaled by a learnt vector ("other") -> Linear."""

    def __init__(self, hidden: int):
        super().__init__()
        self.fc1, self.norm, self.fc2 = nn.Linear(3 * 32 * 32, hidden), nn.LayerNorm(hidden), nn.Linear(hidden, 10)
        self.gain = nn.Parameter(torch.rand(hidden) + 0.5)   # drawn by the constructor: kept by the init

    def forward(self, x):
        return self.fc2(torch.relu(self.norm(self.fc1(x.flatten(1)))) * self.gain)


class TinyBnCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


@pytest.fixture(autouse=True, scope="module")
def _models():
    """The two test models, registered for this module only (the registry is left as it was)."""
    register_model("test_mlp", lambda cfg: TinyMlp(max(2, round(16 * cfg.width))), description="tests")
    register_model("test_bn_cnn", lambda cfg: TinyBnCnn(), description="tests")
    yield
    MODELS.remove("test_mlp")
    MODELS.remove("test_bn_cnn")

BASE = dict(arch="test_mlp", dataset="synthetic", train_subset=64, eval_subset=32, batch_size=16, epochs=2,
            precision="fp64")


@pytest.fixture(scope="module")
def data():
    return load_splits("synthetic", train_subset=64, eval_subset=32)


@pytest.mark.parametrize("optimizer", ["sgd_momentum", "adamw"])
def test_a_run_in_a_pack_equals_the_run_alone(data, optimizer):
    runs = [RunConfig(**BASE, optimizer=optimizer, sigma_w=s, seed=sd, lr0=lr, l2=l2)
            for s, sd, lr, l2 in ((0.5, 0, 1e-2, 0.0), (2.0, 1, 3e-3, 1e-3), (1.0, 2, 1e-2, 0.0))]
    packed = train_pack(runs, data, log=None)
    for r, row in zip(runs, packed):
        alone = train_pack([r], data, log=None)[0]
        for k in ("test_acc", "val_loss_best", "w_norm_best", "w_norm_init", "train_acc_final"):
            assert alone[k] == pytest.approx(row[k], rel=1e-9, abs=1e-12), (r.seed, k)
    assert len({row["w_norm_init"] for row in packed}) == 3   # the runs differ


def test_init_follows_the_runs_scheme_and_keeps_the_constructors_other_parameters():
    cfg = RunConfig(**{**BASE, "width": 4.0})
    net = FuncPack(MODELS["test_mlp"].build, cfg, 2, dtype=torch.float64)
    assert net.param_kinds == {"fc1__weight": "dense", "fc1__bias": "bias", "norm__weight": "norm",
                               "norm__bias": "norm", "fc2__weight": "dense", "fc2__bias": "bias", "gain": "other"}
    runs = [RunConfig(**{**BASE, "width": 4.0}, sigma_w=0.5, seed=0), RunConfig(**{**BASE, "width": 4.0}, sigma_w=2.0, seed=1,
                                                                                 sigma_last=0.25)]
    net.init_(runs, [torch.Generator().manual_seed(s) for s in (0, 1)])
    w1 = net.fc1__weight.detach()
    assert w1[0].std().item() == pytest.approx(0.5 / np.sqrt(3072), rel=0.05)
    assert w1[1].std().item() == pytest.approx(2.0 / np.sqrt(3072), rel=0.05)
    assert net.fc2__weight[1].std().item() == pytest.approx(0.25 / np.sqrt(64), rel=0.25)   # sigma_last
    assert torch.all(net.norm__weight == 1) and torch.all(net.norm__bias == 0)
    assert net.fc1__bias.std().item() == pytest.approx(0.2, rel=0.1)
    assert 0.5 <= net.gain.min().item() and net.gain.max().item() <= 1.5 and not torch.equal(net.gain[0], net.gain[1])
    out = net(torch.rand(2, 5, 3, 32, 32, dtype=torch.float64))
    assert out.shape == (2, 5, 10)


def test_batchnorm_models_train_in_packs_of_one(data):
    cfg = RunConfig(**{**BASE, "arch": "test_bn_cnn"})
    with pytest.raises(ValueError, match="BatchNorm.*packs of one"):
        FuncPack(MODELS["test_bn_cnn"].build, cfg, 2)
    from tune_jobs.planner import Device, max_pack_size
    assert max_pack_size(cfg, Device("cuda", "GPU", 80.0, 1, 0.4)) == 1
    assert max_pack_size(RunConfig(**BASE), Device("cuda", "GPU", 80.0, 1, 0.4)) > 1000
    row = train_pack([cfg], data, log=None)[0]
    assert row["status"] == "completed" and row["n_params"] == 3 * 4 * 9 + 4 + 8 + 40 + 10


def test_cost_is_measured_for_a_plain_model():
    c = cost(RunConfig(arch="test_mlp", width=1.0))          # hidden 16
    assert c.params == 3072 * 16 + 16 + 32 + 16 * 10 + 10 + 16
    assert c.flops == 2 * (3072 * 16 + 16 * 10)               # the two matmuls, 2 FLOPs per multiply-add
    assert not c.batchnorm and cost(RunConfig(arch="test_bn_cnn")).batchnorm
