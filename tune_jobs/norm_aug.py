"""python -m tune_jobs.norm_aug --preset smoke|full [--storage PATH_OR_URI] [--dry-run] [--data PATH]

SPEC Section 2, norm_aug: {BatchNorm, LayerNorm} + augmentation x {sgd, adam} x SIGMA5 x b in {16,128} x 5 seeds: 200 runs.
smoke: 16 runs, 8 packs, ~1 min on 2 CPU cores; full: see `--preset full --dry-run` for packs and GPU-hours.
The experiment itself is data in tune_jobs/catalogue.py; this module is its command.
"""

from tune_jobs.cli import main

if __name__ == "__main__":
    raise SystemExit(main(experiment="norm_aug"))
