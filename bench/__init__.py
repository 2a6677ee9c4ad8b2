"""Side-by-side benchmarks of cloudvol; run with `python bench/run.py`."""
