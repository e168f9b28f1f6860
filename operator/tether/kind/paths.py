"""Where tether's kind tier keeps its builds: a cache keyed by versions, outside the repo."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Return $TETHER_CACHE_DIR or ~/.cache/tether (the lab's binaries live there too)."""
    return Path(os.environ.get("TETHER_CACHE_DIR") or Path.home() / ".cache" / "tether")


def tools_dir() -> Path:
    """Return the checkout's tools/ folder ($TETHER_TOOLS_DIR overrides)."""
    env = os.environ.get("TETHER_TOOLS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "tools"


def repo_root() -> Path:
    """Return the checkout's root (the docker build context of tether's image)."""
    return Path(__file__).resolve().parents[3]
