"""python -m tune_jobs.depth --preset smoke|mini|full [--storage PATH_OR_URI] [--dry-run] [--data PATH]

SPEC Section 2, depth: {ResNet-56, ResNet-110, R9-AvgPool} x OPT5 x SIGMA5 x b in {16,128} x 10 seeds, patience 30 for ResNet-56/110: 1,500 runs.
smoke: 6 runs, 3 packs (adam, b=16), ~2.5 min on 2 CPU cores (trials: ~180 CPU s, resnet110 ~110 s);
mini: 180 runs, ~3 h on 2 CPU cores as the dry run estimates it (ResNet-56/110 pay per layer on a CPU; not run);
full: see `--preset full --dry-run` for packs and GPU-hours. Smoke times: bench/bench_smoke.py.
The experiment itself is data in initmem/study.py; this module is its command.
"""

from tune_jobs.cli import main

if __name__ == "__main__":
    raise SystemExit(main(experiment="depth"))
