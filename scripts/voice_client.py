#!/usr/bin/env python
"""Thin wrapper: `python scripts/voice_client.py ...` runs the command-line voice client."""

from __future__ import annotations

import sys
from pathlib import Path

# Lets the script run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.voice_client.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
