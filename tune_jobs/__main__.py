"""python -m tune_jobs EXPERIMENT_OR_GRID_FILE [--preset smoke|full] [--storage PATH_OR_URI] [--dry-run] ...

    python -m tune_jobs --list
    python -m tune_jobs main_grid --preset smoke
    python -m tune_jobs my_grid.yaml --preset full --dry-run
"""

from tune_jobs.cli import main

raise SystemExit(main())
