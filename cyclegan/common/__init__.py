"""The shared layer under the stages: every package may import it, it imports nothing above it.

- ``errors``: UserError (one line, exit 2) and the one place that reports it; an exception's cause chain;
- ``directions``: AB / BA, the one spelling of the two directions, and the aliases read as them;
- ``imaging``: image files (listing, decoding with one transparency rule);
- ``files``: atomic writes, temporary names, permissions;
- ``devices``: the device a command runs on;
- ``openmp``: the OpenMP wait policy, set before torch loads (applied by ``cyclegan/__init__.py``);
- ``pixels``: [-1, 1] <-> uint8;
- ``subsets``: evenly spaced subsets;
- ``serialization``: safe ``torch.load`` of the files a user names;
- ``visualize``: image grids and loss plots;
- ``loggers``: W&B / TensorBoard / CSV loggers and showing an image in each.

Nothing is imported here: ``cyclegan/__init__.py`` loads ``openmp`` before torch, and that must stay cheap.
"""
