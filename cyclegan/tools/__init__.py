"""Tools around the stages, not part of a train / evaluate / infer run: the throughput benchmark
(``python -m cyclegan.tools.bench``) and the one-call GPU suite with what it carries to a bare GPU
machine (``python -m cyclegan.tools.gpu_suite``, ``cyclegan.tools.gpu_prepare``)."""
