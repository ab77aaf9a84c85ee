"""python -m tune_jobs.lr_l2 --preset smoke|mini|full [--storage PATH_OR_URI] [--dry-run] [--data PATH]

SPEC Section 2, lr_l2: sgd, lr0 in {1e-3,1e-2,1e-1} x l2 in {0,1e-3,5e-3,1e-2} x SIGMA5 x b in {16,128} x 10 seeds: 1,200 runs.
smoke: 8 runs (b=16), 8 packs, ~1 min on 2 CPU cores (measured 64 s in a study, tests/test_smoke.py);
mini: 150 runs, ~40 min on 2 CPU cores as the dry run estimates it (docs/mini_study.md: measured);
full: see `--preset full --dry-run` for packs and GPU-hours. Smoke times: bench/bench_smoke.py.
The experiment itself is data in initmem/study.py; this module is its command.
"""

from tune_jobs.cli import main

if __name__ == "__main__":
    raise SystemExit(main(experiment="lr_l2"))
