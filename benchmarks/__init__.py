"""labpower's benchmarks: ``./dev bench`` (``python benchmarks/run.py``) runs them."""
