"""python -m tune_jobs EXPERIMENT_OR_GRID_FILE [--preset smoke|full] [--storage PATH_OR_URI] [--dry-run] ...

    python -m tune_jobs --list
    python -m tune_jobs main_grid --preset smoke
    python -m tune_jobs my_grid.yaml --preset full --dry-run
    python -m tune_jobs status results/main_grid_smoke [--watch]   # where a sweep stands (no Ray)
"""

import sys

if sys.argv[1:2] == ["status"]:  # before the sweep's imports: status reads the storage only
    from tune_jobs.status import main as status_main
    raise SystemExit(status_main(sys.argv[2:]))

from tune_jobs.cli import main  # noqa: E402

raise SystemExit(main())
