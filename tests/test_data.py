"""Data: sources, the seed-42 split, clear errors for wrong files, per-run augmentation."""

import numpy as np
import pytest
import torch

from initmem.data import (DataError, augment, augment_draws, epoch_order, load_splits, run_generators, split)


def _npz(tmp_path, name="d.npz", n=50, **override):
    rng = np.random.RandomState(0)
    arrays = {"x_train": rng.randint(0, 256, (n, 32, 32, 3)).astype(np.uint8),
              "y_train": rng.randint(0, 10, n).astype(np.uint8),
              "x_test": rng.randint(0, 256, (20, 32, 32, 3)).astype(np.uint8),
              "y_test": rng.randint(0, 10, 20).astype(np.uint8)}
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / name
    np.savez(path, **arrays)
    return path, arrays


def test_npz_split_is_the_seed42_permutation(tmp_path):
    path, a = _npz(tmp_path)
    s = load_splits(path=path)
    perm = np.random.RandomState(42).permutation(50)
    np.testing.assert_array_equal(s.x_val.numpy(), a["x_train"][perm[:10]].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(s.y_train.numpy(), a["y_train"][perm[10:]])
    np.testing.assert_array_equal(s.x_test.numpy(), a["x_test"].transpose(0, 3, 1, 2))
    assert s.y_train.dtype == torch.int64
    f = s.subset(train=8, evaluation=5).to("cpu", torch.float64)
    assert f.x_train.shape == (8, 3, 32, 32) and f.x_val.shape == (5, 3, 32, 32)
    assert f.x_train.dtype == torch.float64 and 0 <= f.x_train.min() and f.x_train.max() <= 1


def test_split_of_50000_holds_out_10000():
    x = np.zeros((50_000, 1, 1, 1), np.uint8)  # shape is irrelevant to the split itself
    s = split(x, np.arange(50_000) % 10, x[:10], np.zeros(10, int))
    assert len(s.y_val) == 10_000 and len(s.y_train) == 40_000


@pytest.mark.parametrize("override, message", [
    ({"y_test": None}, r"missing arrays \['y_test'\]"),
    ({"x_train": np.zeros((50, 28, 28), np.uint8)}, r"x_train has shape \(50, 28, 28\)"),
    ({"x_train": np.zeros((50, 3, 32, 32), np.uint8)}, r"expected \(N, 32, 32, 3\)"),
    ({"x_train": np.zeros((50, 32, 32, 3), np.float32)}, "dtype float32; expected uint8"),
    ({"y_train": np.full(50, 10)}, r"labels in \[10, 10\]; expected 0-9"),
    ({"y_train": np.zeros(49, np.uint8)}, r"y_train has shape \(49,\)"),
])
def test_wrong_npz_gets_a_clear_error(tmp_path, override, message):
    path, _ = _npz(tmp_path, **override)
    with pytest.raises(DataError, match=message):
        load_splits(path=path)


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_splits(path=bad)
    with pytest.raises(DataError, match="does not exist"):
        load_splits(path=tmp_path / "missing.npz")


def test_no_data_anywhere_says_how_to_pass_a_path(monkeypatch, tmp_path):
    monkeypatch.delenv("INITMEM_DATA", raising=False)
    monkeypatch.setattr("initmem.datasets.CACHE", tmp_path / "nothing")
    with pytest.raises(DataError, match="--data PATH.*INITMEM_DATA"):
        load_splits()


def test_env_var_is_used(monkeypatch, tmp_path):
    path, _ = _npz(tmp_path)
    monkeypatch.setenv("INITMEM_DATA", str(path))
    assert load_splits().source == str(path)


def test_subset_larger_than_split_is_an_error(tmp_path):
    path, _ = _npz(tmp_path)
    with pytest.raises(DataError, match="train_subset=41"):
        load_splits(path=path, train_subset=41)


def test_synthetic_is_deterministic_and_sized():
    a, b = load_splits("synthetic", train_subset=64, eval_subset=32), load_splits("synthetic", train_subset=64,
                                                                                  eval_subset=32)
    assert torch.equal(a.x_train, b.x_train) and a.x_train.shape == (64, 3, 32, 32) and len(a.y_test) == 32


def test_generators_are_per_seed_and_per_stream():
    g0, g1 = run_generators([7, 7], 0), run_generators([7], 1)
    a, b, c = (torch.rand(3, generator=g) for g in (g0[0], g0[1], g1[0]))
    assert torch.equal(a, b) and not torch.equal(a, c)
    order = epoch_order(10, run_generators([1, 2], 1))
    assert order.shape == (2, 10) and sorted(order[0].tolist()) == list(range(10))


def test_augment_is_a_flip_and_crop_of_the_reflect_padded_image():
    x = torch.arange(2 * 3 * 3 * 32 * 32, dtype=torch.float64).view(2, 3, 3, 32, 32)
    out = augment(x, run_generators([0, 1], 1))
    # replay the same draws by hand, image by image
    gens = run_generators([0, 1], 1)
    for m in range(2):
        flip = torch.rand(3, generator=gens[m]) < 0.5
        off = torch.randint(0, 9, (3, 2), generator=gens[m])
        for i in range(3):
            img = x[m, i].flip(-1) if flip[i] else x[m, i]
            pad = torch.nn.functional.pad(img[None], (4, 4, 4, 4), mode="reflect")[0]
            oy, ox = off[i].tolist()
            assert torch.equal(out[m, i], pad[:, oy:oy + 32, ox:ox + 32])


def test_an_epoch_of_draws_at_once_is_its_batches_drawn_one_by_one():
    # train_epoch draws an epoch's flips and crops at its start (one copy to the device, not two per step):
    # the same numbers, and the generators end where batch-by-batch drawing leaves them
    x = torch.randn(2, 10, 3, 32, 32, dtype=torch.float64)
    sizes, edges = [4, 4, 2], [0, 4, 8, 10]
    one_by_one, at_start = run_generators([0, 1], 1), run_generators([0, 1], 1)
    flips, offsets = augment_draws(at_start, sizes)
    assert flips.shape == (2, 10) and offsets.shape == (2, 10, 2)
    for lo, hi in zip(edges, edges[1:]):
        step = augment(x[:, lo:hi], one_by_one)
        assert torch.equal(step, augment(x[:, lo:hi], draws=(flips[:, lo:hi], offsets[:, lo:hi])))
    for g, h in zip(one_by_one, at_start):
        assert torch.equal(g.get_state(), h.get_state())

@pytest.mark.slow
@pytest.mark.no_cluster
def test_real_cifar_npz_when_present(shared):
    path = shared / "data" / "cifar10-jpeg75.npz"
    if not path.exists():
        pytest.skip(f"{path} not present")
    s = load_splits(path=path)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (40_000, 10_000, 10_000)
    assert torch.bincount(s.y_test).tolist() == [1000] * 10


def test_folder_without_torchvision_cifar_says_what_to_pass(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()  # present but empty
    with pytest.raises(DataError, match="data_batch_1: missing.*not a complete torchvision download.*--data"):
        load_splits(path=tmp_path)
