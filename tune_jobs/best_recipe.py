"""python -m tune_jobs.best_recipe --preset smoke|mini|full [--storage PATH_OR_URI] [--dry-run] [--data PATH]

SPEC Section 2, best_recipe: 200 ep, augmentation: sgd_momentum (lr0 0.1, mu 0.9, L2 5e-4) vs adam (1e-3), sigma {0.1,2.5} x b {16,128,256} x 10 seeds: 120 runs.
smoke: 4 runs (b=16), 4 packs, ~1 min on 2 CPU cores (measured 49 s in a study, tests/test_smoke.py);
mini: 24 runs, ~4 min on 2 CPU cores as the dry run estimates it (docs/mini_study.md: measured);
full: see `--preset full --dry-run` for packs and GPU-hours. Smoke times: bench/bench_smoke.py.
The experiment itself is data in initmem/study.py; this module is its command.
"""

from tune_jobs.cli import main

if __name__ == "__main__":
    raise SystemExit(main(experiment="best_recipe"))
