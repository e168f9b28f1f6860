"""`kubectl tether watch … -o json` running in the background, for the tests that drive it."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time


class Watch:
    """`kubectl tether watch ARGS -o json` in ``env``; its lines as dicts, as they come."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            ["kubectl", "tether", "watch", *args, "-o", "json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def until(self, done, timeout: float = 90.0, what: str = "") -> list[dict]:
        """Updates up to and including the first one for which ``done(update)`` holds."""
        got, deadline = [], time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                u = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                err = self.proc.stderr.read() if self.proc.poll() is not None else ""
                raise TimeoutError(f"watch: no {what} after {timeout:.0f} s; {got} {err}") from None
            got.append(u)
            if done(u):
                return got

    def stop(self) -> None:
        """End the watcher (it runs until interrupted, as a user's would)."""
        self.proc.terminate()
        self.proc.wait(timeout=10)
