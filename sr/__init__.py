"""Building blocks shared by main.py, gen_samples.py, the tests and the benchmarks."""
