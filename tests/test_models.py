"""python -m pytest tests/test_models.py -q

Packed ResNets: parameter counts, a run in a pack == the run alone, NaN isolation, BN active
mask, norm layers vs real Keras, init statistics, Keras 'same' padding, option-A shortcut.
"""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from initmem.config import RunConfig
from initmem.architectures import MODELS
from initmem.models import (BasicBlock, BatchNorm, Conv, LayerNorm, build_model,
                            keras_same_pad)

KERAS = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "keras_vectors.npz"
PARAMS = {"resnet9": 6_575_370, "r9_avgpool": 6_575_370, "resnet56": 855_050, "resnet110": 1_732_010}
N_CONVS = {"resnet9": 8, "r9_avgpool": 8, "resnet56": 55, "resnet110": 109}
TINY = 1 / 16
SIZE = {"resnet9": 16, "r9_avgpool": 16, "resnet56": 8, "resnet110": 8}  # image side for tiny tests


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and avoids OpenMP stalls when other jobs share the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

PACKED = [name for name, spec in MODELS.items() if spec.packed]  # the built-in ResNets


def gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def tiny(arch, norm="batchnorm", n_runs=3, dtype=torch.float64, sigmas=(0.5, 1.0, 2.0),
         seeds=(0, 1, 42), **kw):
    net = build_model(RunConfig(arch=arch, norm=norm, width=TINY, **kw), n_runs, dtype)
    net.init_(list(sigmas[:n_runs]), gens(seeds[:n_runs]))
    return net


def batch(arch, n_runs, b=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = SIZE[arch]
    x = torch.rand(n_runs, b, 3, s, s, generator=g, dtype=dtype)
    y = torch.randint(0, 10, (n_runs, b), generator=g)
    return x, y


def loss_sum(logits, y):
    """Sum over runs of each run's mean cross-entropy: d/d(run m's loss) = 1, no mixing."""
    M, B = y.shape
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(M, B).mean(1).sum()


def assert_rel(a, b, rel=1e-12, floor=1e-300):
    """max |a - b| <= rel * max(max |b|, floor) (relative to the tensor's scale, or to `floor` where
    that is larger: a tensor zero in exact arithmetic holds round-off, not a scale)."""
    scale = b.abs().max().item()
    err = (a - b).abs().max().item()
    assert err <= rel * max(scale, floor), f"max err {err:.3e} vs scale {scale:.3e} (floor {floor:.1e})"


# --- structure ------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", PACKED)
def test_param_counts_and_kinds(arch):
    for n_runs in (1, 2):
        net = build_model(RunConfig(arch=arch), n_runs)  # width 1; counted from shapes, no forward
        assert net.n_params_per_run() == PARAMS[arch]
        names = [n for n, _ in net.named_parameters()]
        assert list(net.param_kinds) == names
        assert net.kernel_names == [n for n in names if net.param_kinds[n] in ("conv", "dense")]
        kinds = [net.param_kinds[n] for n in net.kernel_names]
        assert kinds == ["conv"] * N_CONVS[arch] + ["dense"]
        for name, p in net.named_parameters():
            ndim = {"conv": 5, "dense": 3, "bias": 2, "norm": 2}[net.param_kinds[name]]
            assert p.ndim == ndim and p.shape[0] == n_runs, name
        c_feat = 512 if arch in ("resnet9", "r9_avgpool") else 64
        assert dict(net.named_parameters())[net.kernel_names[-1]].shape == (n_runs, 10, c_feat)
        for name, buf in net.named_buffers():
            assert buf.shape[0] == n_runs and buf.ndim == 2, name


def test_width_multiplier():
    net = build_model(RunConfig(arch="resnet56", width=0.25), 1)
    assert dict(net.named_parameters())["head.weight"].shape == (1, 10, 16)
    net = build_model(RunConfig(arch="resnet9", width=1 / 128), 1)  # 64/128 -> max(1, round(0.5)) = 1
    assert dict(net.named_parameters())["body.prep.conv.weight"].shape == (1, 1, 3, 3, 3)


# --- a run in a pack computes what it computes alone ----------------------------------------

@pytest.mark.parametrize("norm", ["batchnorm", "layernorm"])
@pytest.mark.parametrize("arch", PACKED)
def test_pack_matches_alone(arch, norm):
    M, sigmas, seeds = 3, (0.5, 1.0, 2.5), (0, 1, 42)
    pack = tiny(arch, norm, M, sigmas=sigmas, seeds=seeds)
    alone = [tiny(arch, norm, 1, sigmas=sigmas[m:], seeds=seeds[m:]) for m in range(M)]
    x, y = batch(arch, M)

    loss_sum(pack(x), y).backward()  # training mode: batch stats, moving stats move
    logits = pack(x).detach()        # second call: the same batch, moving stats moved twice now
    for m, net in enumerate(alone):
        for (name, p), q in zip(pack.named_parameters(), net.parameters()):
            assert torch.equal(p.detach()[m], q.detach()[0]), f"init differs in a pack: {name}"
        F.cross_entropy(net(x[m:m + 1])[0], y[m]).backward()
        assert_rel(logits[m], net(x[m:m + 1])[0].detach())
        # a conv bias before BatchNorm has gradient 0 in exact arithmetic, its computed one is round-off:
        # every tensor is judged against at least 1% of the run's largest gradient (seen in resnet56,
        # channels_last: 3.2e-14 against a scale of 1.4e-14, the largest gradient 42)
        floor = 1e-2 * max(q.grad.abs().max().item() for q in net.parameters())
        for (name, p), q in zip(pack.named_parameters(), net.parameters()):
            assert_rel(p.grad[m], q.grad[0], floor=floor)
        for b, c in zip(pack.buffers(), net.buffers()):
            assert_rel(b[m], c[0])

    pack.eval()
    with torch.no_grad():
        logits = pack(x)
        for m, net in enumerate(alone):
            assert_rel(logits[m], net.eval()(x[m:m + 1])[0])


def test_channels_last_matches():
    for arch in ("resnet9", "resnet56"):
        a = tiny(arch, dtype=torch.float64, channels_last=False)
        b = tiny(arch, dtype=torch.float64, channels_last=True)
        x, y = batch(arch, 3)
        assert_rel(b(x), a(x))


# --- isolation: a NaN run never touches its pack-mates --------------------------------------

@pytest.mark.parametrize("norm", ["batchnorm", "layernorm"])
@pytest.mark.parametrize("arch", PACKED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nan_run_is_isolated(arch, norm, dtype):
    M = 3
    clean = tiny(arch, norm, M, dtype=dtype)
    poisoned = copy.deepcopy(clean)
    with torch.no_grad():
        for p in poisoned.parameters():
            p[0] = float("nan")
    x, y = batch(arch, M, dtype=dtype)
    outs = []
    for net in (clean, poisoned):
        logits = net(x)
        loss_sum(logits, y).backward()
        outs.append((logits.detach(), [p.grad for p in net.parameters()], [b.clone() for b in net.buffers()]))
        net.eval()
        with torch.no_grad():
            outs[-1] += (net(x),)
    (l0, g0, b0, e0), (l1, g1, b1, e1) = outs
    assert l1[0].isnan().all() and e1[0].isnan().all()  # the poison took
    assert torch.equal(l0[1:], l1[1:]) and torch.equal(e0[1:], e1[1:])
    for a, b in zip(g0, g1):
        assert b[0].isnan().any() and torch.equal(a[1:], b[1:])
    for a, b in zip(b0, b1):
        assert torch.equal(a[1:], b[1:])


# --- BatchNorm active mask -------------------------------------------------------------------

def test_active_mask_freezes_moving_stats():
    net = tiny("resnet56", n_runs=3)
    x, _ = batch("resnet56", 3)
    net.active = torch.tensor([True, False, True])
    before = [b.clone() for b in net.buffers()]
    net(x)
    for a, b in zip(before, net.buffers()):
        assert torch.equal(a[1], b[1])
        assert not torch.equal(a[0], b[0]) and not torch.equal(a[2], b[2])
    net.eval()
    before = [b.clone() for b in net.buffers()]
    net(x)  # inference mode never moves them
    assert all(torch.equal(a, b) for a, b in zip(before, net.buffers()))
    net.train()
    net.active = None  # all active again
    net(x)
    assert all(not torch.equal(a[1], b[1]) for a, b in zip(before, net.buffers()))
    with pytest.raises(AssertionError):
        net.active = torch.tensor([True, False])


# --- norm layers vs real Keras ---------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    if not KERAS.exists():
        pytest.skip(f"Keras ground truth {KERAS} absent (CI has it at ../shared/reference)")
    return np.load(KERAS)


def nhwc_to_packed(arrays):
    """List of (B, H, W, C) arrays, one per run -> float64 (B, M*C, H, W)."""
    return torch.cat([torch.as_tensor(a, dtype=torch.float64).permute(0, 3, 1, 2) for a in arrays], 1)


def test_batchnorm_matches_keras(keras):
    x = keras["bn/x"].astype(np.float64)
    bn = BatchNorm(2, 3, dtype=torch.float64)  # run 1 sees other data: must not disturb run 0
    for scale in (1, 2, 3):
        out = bn(nhwc_to_packed([scale * x, 10 * x * scale + 1]))
    out = out[:, :3].permute(0, 2, 3, 1).detach()
    np.testing.assert_allclose(out.numpy(), keras["bn/train_out_last"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.moving_mean[0].numpy(), keras["bn/moving_mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_var[0].numpy(), keras["bn/moving_variance"], rtol=1e-5, atol=1e-6)
    bn.eval()
    out = bn(nhwc_to_packed([x, x]))[:, :3].permute(0, 2, 3, 1).detach()
    np.testing.assert_allclose(out.numpy(), keras["bn/infer_out"], rtol=1e-5, atol=1e-5)


def test_layernorm_matches_keras(keras):
    x = keras["bn/x"].astype(np.float64)
    ln = LayerNorm(2, 3, dtype=torch.float64)
    out = ln(nhwc_to_packed([x, 5 * x - 2]))[:, :3].permute(0, 2, 3, 1).detach()
    np.testing.assert_allclose(out.numpy(), keras["ln/out"], rtol=1e-5, atol=1e-5)


# --- initialisation --------------------------------------------------------------------------

def test_init_statistics():
    sigmas = [0.5, 2.0]
    net = build_model(RunConfig(arch="resnet9"), 2, torch.float64)
    net.init_(sigmas, gens([0, 1]))
    params = dict(net.named_parameters())
    w = params["body.layer3.0.conv.weight"]  # (2, 512, 256, 3, 3): 1.2M draws per run
    for m, s in enumerate(sigmas):
        assert abs(w[m].std().item() / (s / (256 * 9) ** 0.5) - 1) < 0.01
        assert abs(w[m].mean().item()) < 0.01 * s / (256 * 9) ** 0.5
    d = params["head.weight"]
    for m, s in enumerate(sigmas):  # dense fan_in = 512 inputs; 5120 draws
        assert abs(d[m].std().item() / (s / 512 ** 0.5) - 1) < 0.05
    biases = torch.cat([p.detach().flatten(1) for n, p in params.items() if net.param_kinds[n] == "bias"], 1)
    assert biases.shape[1] > 2000
    for m in range(2):
        assert abs(biases[m].std().item() / 0.2 - 1) < 0.05  # not scaled by sigma
    assert not torch.equal(biases[0], biases[1])
    for n, p in params.items():
        if net.param_kinds[n] == "norm":
            assert torch.equal(p, torch.ones_like(p) if n.endswith("weight") else torch.zeros_like(p))
    for n, b in net.named_buffers():
        assert torch.equal(b, torch.ones_like(b) if n.endswith("moving_var") else torch.zeros_like(b))


def test_init_same_in_fp32_and_fp64():
    nets = []
    for dtype in (torch.float32, torch.float64):
        net = build_model(RunConfig(arch="resnet56", width=0.5), 2, dtype)
        net.init_([0.3, 1.7], gens([7, 8]))
        nets.append(net)
    for (name, p32), p64 in zip(nets[0].named_parameters(), nets[1].parameters()):
        assert p32.dtype == torch.float32 and p64.dtype == torch.float64
        assert torch.equal(p32, p64.to(torch.float32)), name


def test_params_nan_until_init():
    net = build_model(RunConfig(arch="resnet56", width=TINY), 1)
    assert net.body.stem.conv.weight.isnan().all()
    with pytest.raises(ValueError):
        net.init_([1.0, 2.0], gens([0]))


# --- Keras 'same' padding and option-A shortcut ----------------------------------------------

def test_keras_same_pad():
    assert keras_same_pad(32, 3, 2) == (0, 1) and keras_same_pad(6, 3, 2) == (0, 1)
    assert keras_same_pad(7, 3, 2) == (1, 1) and keras_same_pad(32, 3, 1) == (1, 1)


def test_stride2_conv_pads_bottom_right():
    M, c_in, c_out, H = 2, 2, 3, 6
    conv = Conv(M, c_in, c_out, stride=2, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g, dtype=torch.float64))
        conv.bias.copy_(torch.randn(conv.bias.shape, generator=g, dtype=torch.float64))
    x = torch.randn(2, M * c_in, H, H, generator=g, dtype=torch.float64)
    out = conv(x).detach().numpy()
    assert out.shape == (2, M * c_out, 3, 3)
    w, b, xn = conv.weight.detach().numpy(), conv.bias.detach().numpy(), x.numpy()
    # direct: out[i, j] = b + sum_k w[k] * x[2i + ki, 2j + kj], pixels past the bottom/right edge are 0
    for m in range(M):
        for o in range(c_out):
            for i in range(3):
                for j in range(3):
                    acc = b[m, o]
                    for c in range(c_in):
                        for ki in range(3):
                            for kj in range(3):
                                r, s = 2 * i + ki, 2 * j + kj
                                if r < H and s < H:
                                    acc += w[m, o, c, ki, kj] * xn[:, m * c_in + c, r, s]
                    np.testing.assert_allclose(out[:, m * c_out + o, i, j], acc, rtol=1e-12, atol=1e-12)


def test_option_a_shortcut():
    cfg = RunConfig(arch="resnet56")
    block = BasicBlock(cfg, 2, 2, 4, 2, dtype=torch.float64)  # 2 runs, 2 -> 4 channels: 1 zero each side
    x = torch.randn(3, 2 * 2, 6, 6, dtype=torch.float64)
    s = block.shortcut(x)
    assert s.shape == (3, 2 * 4, 3, 3)
    for m in range(2):
        run = s[:, 4 * m:4 * m + 4]
        assert torch.equal(run[:, 1:3], x[:, 2 * m:2 * m + 2, ::2, ::2])
        assert (run[:, 0] == 0).all() and (run[:, 3] == 0).all()


# --- compile-friendliness ---------------------------------------------------------------------

def test_no_graph_breaks():
    net = tiny("resnet56", n_runs=2, dtype=torch.float32)
    net.active = torch.tensor([True, False])
    x, _ = batch("resnet56", 2, dtype=torch.float32)
    expected = copy.deepcopy(net)(x)
    compiled = torch.compile(net, backend="eager", fullgraph=True)  # dynamo only: fails on a graph break
    assert_rel(compiled(x), expected, rel=1e-6)
