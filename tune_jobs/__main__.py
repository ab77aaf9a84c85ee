"""python -m tune_jobs EXPERIMENT_OR_GRID_FILE [--preset smoke|full] [--storage PATH_OR_URI] [--dry-run] ...

    python -m tune_jobs --list
    python -m tune_jobs main_grid --preset smoke
    python -m tune_jobs my_grid.yaml --preset full --dry-run
    python -m tune_jobs status results/main_grid_smoke [--watch]   # where a sweep stands (no Ray)
    python -m tune_jobs study --preset mini                         # the findings' three minis, one report
    python -m tune_jobs export results/main_grid_smoke --to mlflow   # into MLflow or TensorBoard (no Ray)
"""

import sys

if sys.argv[1:2] == ["status"]:  # before the sweep's imports: status reads the storage only
    from tune_jobs.status import main as status_main
    raise SystemExit(status_main(sys.argv[2:]))
if sys.argv[1:2] == ["study"]:   # several experiments on one storage, one report (tune_jobs/study.py)
    from tune_jobs.study import main as study_main
    raise SystemExit(study_main(sys.argv[2:]))

if sys.argv[1:2] == ["export"]:  # the storage into a tracker (tune_jobs/export.py)
    from tune_jobs.export import main as export_main
    raise SystemExit(export_main(sys.argv[2:]))

from tune_jobs.cli import main  # noqa: E402

raise SystemExit(main())
