"""prenv benchmarks: each result is measured against a floor taken in the same run on the same machine."""
