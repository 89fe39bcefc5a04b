"""The pipeline's stages, one module per ``iai`` command: generate, tune (tune-lr), train, evaluate,
bench, merge. Each is a thin command line (``cli_arguments`` and ``cli_main``) over library
functions of :mod:`iai.core`; no stage imports another (tests/test_layers.py)."""
