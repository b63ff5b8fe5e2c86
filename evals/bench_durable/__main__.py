"""``python -m evals.bench_durable``: run the benchmark."""

from evals.bench_durable.cli import main

if __name__ == "__main__":
    main()
