"""``python -m evals.generate``: rewrite the dataset files."""

from evals.generate import main

main()
