"""Where untrusted candidate code runs: the Evaluator and its executors, backends, the runner,
datasets, the image recipe, the result cache.

Nothing here imports the rest of nasloop; the runner is self-contained (stdlib + torch) because
it is what travels into the sandbox.
"""
