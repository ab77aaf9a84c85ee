"""python -m tune_jobs.norm_aug --preset smoke|mini|full [--storage PATH_OR_URI] [--dry-run] [--data PATH]

SPEC Section 2, norm_aug: {BatchNorm, LayerNorm} + augmentation x {sgd, adam} x SIGMA5 x b in {16,128} x 5 seeds: 200 runs.
smoke: 8 runs, 4 packs (b=16 only), ~1.5 min on 2 CPU cores (trials: ~170 CPU s, LayerNorm ~2.3x BatchNorm);
mini: 120 runs, ~55 min on 2 CPU cores as the dry run estimates it (LayerNorm costs ~3x BatchNorm on a CPU; not run);
full: see `--preset full --dry-run` for packs and GPU-hours. Smoke times: bench/bench_smoke.py.
The experiment itself is data in initmem/study.py; this module is its command.
"""

from tune_jobs.cli import main

if __name__ == "__main__":
    raise SystemExit(main(experiment="norm_aug"))
