"""Work inside another network namespace (the kind node's) from one short-lived thread."""

from __future__ import annotations

import os


def in_netns(path: str, fn, *args, **kwargs):
    """Run fn in a short-lived thread that joined the network namespace at `path`.

    setns(2) moves only the calling thread; sockets keep the namespace they were created in.
    """
    import ctypes
    import threading

    result: dict = {}

    def work() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:
                    raise OSError(ctypes.get_errno(), f"setns({path})")
            finally:
                os.close(fd)
            result["value"] = fn(*args, **kwargs)
        except BaseException as e:  # handed to the caller's thread
            result["error"] = e

    t = threading.Thread(target=work, name="kind-netns")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
