"""Command-line flags that also read an environment variable (for Deployments' `env:`)."""

from __future__ import annotations

import os


def env_name(prefix: str, flag: str) -> str:
    """The variable for ``--flag``: ``prefix`` + the flag upper-cased, dashes as underscores."""
    return prefix + flag.upper().replace("-", "_")


def add_env_flag(p, prefix: str, flag: str, default, help: str, type=str, **kw) -> None:
    """Add ``--flag``; its default is ``$<prefix><FLAG>`` when set, else ``default``.

    The flag wins over the variable. argparse converts a string default with ``type`` as it
    converts the flag, so a bad value in the variable is the usual usage error naming the flag.
    """
    raw = os.environ.get(env_name(prefix, flag))
    p.add_argument(f"--{flag}", default=default if raw is None else raw, type=type, help=help, **kw)
