"""The browser check is collected only when asked for (`make browser-check`, which sets
LRKIT_BROWSER_CHECK=1): it needs Chromium and playwright, and takes about a minute, so
`pytest tests` and `make test` skip this folder without importing it."""

import os

if not os.environ.get("LRKIT_BROWSER_CHECK"):
    collect_ignore_glob = ["*.py"]
