"""Make the brute-force cron oracle (``cron_oracle.py``, next to this file) importable."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
