"""python bench/plain_loop.py [--sigma-w 2.5] [--optimizer sgd] [--batch-size 16] [--epochs 40] [--data NPZ]

One mini run trained twice: by initmem (train_pack, as a sweep's trial does) and by an independent
plain PyTorch loop: the same network and initial weights (initmem's ResNet-9, built and initialised
as a pack of one, whose forward and init are checked against Keras elsewhere), but torch.optim.SGD /
torch.optim.Adam / AdamW, F.cross_entropy, torch.randperm batches and the cosine schedule written out
here from SPEC Section 3. It prints both runs' train loss, train accuracy (the epoch's running mean,
as Keras reports it) and test accuracy per epoch. The two see different batch orders, so they agree
statistically, not bit for bit: if initmem's run fails to fit its training set where the plain loop
fits it, initmem has a bug; if both stop at the same level, the budget (updates at this lr) is what
limits it. docs/mini_study.md uses it for the findings that fail at mini scale.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from initmem.config import RunConfig  # noqa: E402
from initmem.data import load_splits  # noqa: E402
from initmem.results import read_epochs  # noqa: E402
from initmem.train import PackTrainer, evaluate, train_pack  # noqa: E402

MINI = {"width": 0.125, "train_subset": 256, "eval_subset": 200}


def cosine(k: int, total: int, lr0: float, alpha: float) -> float:
    """SPEC Section 3: lr0 * [alpha + (1 - alpha) * 0.5 * (1 + cos(pi * min(k, K) / K))]."""
    return lr0 * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(k, total) / total)))


def plain(cfg: RunConfig, data, seed: int = 0) -> list[dict]:
    trainer = PackTrainer([cfg], data)          # initmem's network and initial weights, nothing else
    model = trainer.model
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr0)
    elif cfg.optimizer == "sgd_momentum":
        opt = torch.optim.SGD(params, lr=cfg.lr0, momentum=cfg.momentum)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr0, eps=1e-7)            # Keras' epsilon
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr0, eps=1e-7, weight_decay=cfg.weight_decay)
    else:
        raise SystemExit(f"--optimizer {cfg.optimizer!r}: the plain loop knows sgd, sgd_momentum, adam, adamw")
    x, y = trainer.data.x_train, trainer.data.y_train
    n, b = len(y), cfg.batch_size
    steps = math.ceil(n / b)
    total = steps * cfg.epochs
    gen = torch.Generator().manual_seed(seed)
    rows, k = [], 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        loss_sum = correct = 0.0
        for i in range(steps):
            idx = perm[i * b:(i + 1) * b]
            for group in opt.param_groups:
                group["lr"] = cosine(k, total, cfg.lr0, cfg.alpha)
            logits = model(x[idx].unsqueeze(0))[0]
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            k += 1
            loss_sum += float(loss.detach()) * len(idx)
            correct += float((logits.argmax(-1) == y[idx]).sum())
        with torch.no_grad():
            _, test_acc = evaluate(model, trainer.data.x_test, trainer.data.y_test, 1, trainer.autocast, 200)
        rows.append({"epoch": epoch, "train_loss": loss_sum / n, "train_acc": correct / n,
                     "test_acc": float(test_acc[0])})
    # the same weights with BatchNorm on the test batch's own statistics (train mode, no update kept):
    # tells a network that learned from one whose running statistics lag its weights (Keras momentum 0.99)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    with torch.no_grad():
        logits = model(trainer.data.x_test.unsqueeze(0))[0]
    model.load_state_dict(state)
    rows[-1]["test_acc_batch_stats"] = float((logits.argmax(-1) == trainer.data.y_test).float().mean())
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sigma-w", type=float, default=2.5)
    ap.add_argument("--optimizer", default="sgd")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--lr0", type=float, default=1e-3)
    ap.add_argument("--train-subset", type=int, default=MINI["train_subset"])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg75.npz"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = RunConfig(**{**MINI, "train_subset": args.train_subset}, optimizer=args.optimizer, sigma_w=args.sigma_w,
                    batch_size=args.batch_size, epochs=args.epochs, lr0=args.lr0, experiment="plain_loop")
    data = load_splits(cfg.dataset, args.data, cfg.train_subset, cfg.eval_subset)
    with tempfile.TemporaryDirectory() as out:
        train_pack([cfg], data, out, log=None)
        ours = read_epochs(out).sort_values("epoch")
    ref = plain(cfg, data)
    print(f"{cfg.optimizer} b={cfg.batch_size} sigma_w={cfg.sigma_w} lr0={cfg.lr0} width {cfg.width} on "
          f"{cfg.train_subset} images, {cfg.epochs} epochs ({math.ceil(cfg.train_subset / cfg.batch_size) * cfg.epochs} updates)")
    print(f"{'epoch':>5}  {'initmem loss':>12} {'plain loss':>10}  {'initmem train':>13} {'plain train':>11}  "
          f"{'initmem test':>12} {'plain test':>10}")
    ours = ours[ours["epoch"] >= 1].set_index("epoch")
    for r in ref:
        e = r["epoch"]
        if e in (1, 2, 5) or e % 5 == 0 or e == cfg.epochs:
            o = ours.loc[e]
            print(f"{e:>5}  {o.train_loss:>12.3f} {r['train_loss']:>10.3f}  {o.train_acc:>13.3f} {r['train_acc']:>11.3f}  "
                  f"{o.test_acc:>12.3f} {r['test_acc']:>10.3f}")
    best = np.max([r["train_acc"] for r in ref])
    print(f"best train accuracy: initmem {ours['train_acc'].max():.3f}, plain loop {best:.3f}")
    print(f"plain loop's test accuracy at the end: {ref[-1]['test_acc']:.3f} with BatchNorm's running statistics, "
          f"{ref[-1]['test_acc_batch_stats']:.3f} with the test images' own statistics")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
