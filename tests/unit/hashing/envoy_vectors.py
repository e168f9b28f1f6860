"""Host lists used by Envoy's unit tests (makeTestHost / makeTestHost with hostname)."""

from tether.hashing import Host

PORTS_90_95 = [Host(f"127.0.0.1:{p}") for p in range(90, 96)]
HOSTNAMES_90_95 = [Host(str(p)) for p in range(90, 96)]
PORTS_80_85 = [Host(f"127.0.0.1:{p}") for p in range(80, 86)]
U64_MAX = 2**64 - 1


def spread(i: int, n: int) -> int:
    """Envoy tests' evenly spread hashes: ``i * (UINT64_MAX / n)``."""
    return i * (U64_MAX // n)
