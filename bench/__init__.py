"""Benchmarks of issue 7 (`referrals bench`, `python -m bench`): figures beside baselines
measured in the same run, written to bench/RESULTS.md. Not part of the test suite."""
