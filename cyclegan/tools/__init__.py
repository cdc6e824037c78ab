"""Tools around the stages, not part of a train / evaluate / infer run: the benchmark
(``python -m cyclegan.tools.bench``: training pairs/s, inference images/s, the Kaggle zip, peak
memory and the default callbacks' per-step cost, on any device)."""
