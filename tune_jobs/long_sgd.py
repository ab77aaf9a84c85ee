"""python -m tune_jobs.long_sgd --preset smoke|mini|full [--storage PATH_OR_URI] [--dry-run] [--data PATH]

SPEC Section 2, long_sgd: sgd, constant lr 1e-3, 5,000 epochs, SIGMA5 x b in {16,128}, seed 42: 10 runs.
smoke: 4 runs, 2 packs, ~1 min on 2 CPU cores;
mini: 10 runs, ~27 min on 2 CPU cores as the dry run estimates it (docs/mini_study.md: measured);
full: see `--preset full --dry-run` for packs and GPU-hours. Smoke times: bench/bench_smoke.py.
The experiment itself is data in initmem/study.py; this module is its command.
"""

from tune_jobs.cli import main

if __name__ == "__main__":
    raise SystemExit(main(experiment="long_sgd"))
