"""pgqueue's benchmark harness: pgqueue side by side with its peers, on one Postgres, one command.

`python -m benchmarks run --quick|--full` installs every peer into its own virtualenv under
`benchmarks/.cache/`, runs the metrics of issue 6 for each, and writes
`benchmarks/results/<date>.{json,md,png}`. `python -m benchmarks check --quick` is the CI
regression gate: pgqueue's speed relative to the raw-psycopg loop, measured in the same run,
must not fall below half of the committed baseline ratio. See docs/benchmarks.md.
"""
