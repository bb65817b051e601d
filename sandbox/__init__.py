"""Where untrusted candidate code runs: the Evaluator and its executors, backends, the runner,
datasets, the image recipe, the result cache.

Nothing here imports the rest of nasloop; `sandbox/inside/runner.py` is self-contained (stdlib + torch)
because it is the one file that travels into the sandbox.
"""
