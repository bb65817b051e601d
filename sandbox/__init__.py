"""Where untrusted candidate code runs: backends, the in-sandbox runner, datasets, the image recipe.

Nothing here imports the rest of nasloop; `sandbox/runner.py` is self-contained (stdlib + torch)
because it is the one file that travels into the sandbox.
"""
