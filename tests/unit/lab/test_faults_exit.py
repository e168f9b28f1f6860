"""A crashed lab daemon is started again only once all its threads are gone
(`tether.lab.faults._wait_exited`): a process whose leader thread has exited shows as a zombie
(`procs.alive` is False) while its other threads still run and hold its sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tether.lab import faults, procs

# the main thread ends with pthread_exit (not exit_group): the leader is a zombie, the other
# thread keeps running (and would keep a listening socket open)
LEADER_EXITS = """
import ctypes, sys, threading, time
threading.Thread(target=time.sleep, args=(60,)).start()
print("ready", flush=True)
ctypes.CDLL(None).pthread_exit(None)
"""


def test_a_zombie_leader_with_live_threads_is_waited_for_until_they_exit():
    proc = subprocess.Popen([sys.executable, "-c", LEADER_EXITS], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 10
        while procs.alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not procs.alive(proc.pid)  # the leader looks dead...
        assert faults._threads_left(proc.pid) >= 1  # ...but a thread still runs
        os.kill(proc.pid, signal.SIGKILL)
        faults._wait_exited(proc.pid, "probe", timeout=10)
        assert faults._threads_left(proc.pid) == 0
    finally:
        proc.kill()
        proc.wait()


def test_wait_exited_returns_at_once_for_a_reaped_process():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    began = time.monotonic()
    faults._wait_exited(proc.pid, "probe", timeout=10)
    assert time.monotonic() - began < 1
