"""τ²-bench retail train split, phrased as customers write, run end to end (see README.md)."""
