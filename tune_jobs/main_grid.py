"""python -m tune_jobs.main_grid --preset smoke|mini|full [--storage PATH_OR_URI] [--dry-run] [--data PATH]

SPEC Section 2, main_grid: ResNet-9 x SIGMA25 x OPT5 x b in {16,32,64,128,256} x 10 seeds: 6,250 runs.
smoke: 20 runs, 10 packs, ~3 min on 2 CPU cores (trials: 308 CPU s, longest of 2 lanes 156 s);
mini: 120 runs, ~32 min on 2 CPU cores as the dry run estimates it (docs/mini_study.md: measured);
full: see `--preset full --dry-run` for packs and GPU-hours. Smoke times: bench/bench_smoke.py.
The experiment itself is data in initmem/study.py; this module is its command.
"""

from tune_jobs.cli import main

if __name__ == "__main__":
    raise SystemExit(main(experiment="main_grid"))
