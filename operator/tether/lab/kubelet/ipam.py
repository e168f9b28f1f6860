"""Pod IP allocation for one node, and putting the addresses on the lab namespace's `lo`.

Allocation rotates through the node's CIDR (like CNI host-local) so a released address is not
handed out again right away: a test that checks a deleted pod's IP refuses connections is not
fooled by a new pod that got the same address.
"""

from __future__ import annotations

import asyncio
import ipaddress


class PoolExhausted(RuntimeError):
    """No free address is left in the node's pod CIDR."""


class Ipam:
    """Addresses of one pod CIDR, each owned by at most one pod UID."""

    def __init__(self, cidr: str) -> None:
        net = ipaddress.ip_network(cidr)
        # Skip the network address and .1 (kept free, as a gateway would be); keep broadcast out.
        self._hosts = [str(ip) for ip in net.hosts()][1:]
        self._host_set = frozenset(self._hosts)
        self._by_uid: dict[str, str] = {}
        self._owner: dict[str, str] = {}
        self._cursor = 0

    def __contains__(self, ip: str) -> bool:
        return ip in self._host_set

    def allocate(self, uid: str, prefer: str | None = None) -> str:
        """Return the address of pod `uid`: its existing one, `prefer` if free and in range,
        else the next free one after the last allocation.

        Invariant: no address is ever owned by two UIDs.
        """
        if uid in self._by_uid:
            return self._by_uid[uid]
        if prefer and prefer in self and prefer not in self._owner:
            return self._take(uid, prefer)
        n = len(self._hosts)
        for step in range(n):
            ip = self._hosts[(self._cursor + step) % n]
            if ip not in self._owner:
                self._cursor = (self._cursor + step + 1) % n
                return self._take(uid, ip)
        raise PoolExhausted(f"no free pod address left ({n} in use)")

    def _take(self, uid: str, ip: str) -> str:
        self._by_uid[uid] = ip
        self._owner[ip] = uid
        return ip

    def release(self, uid: str) -> str | None:
        """Free the address of `uid`; return it (None if it had none)."""
        ip = self._by_uid.pop(uid, None)
        if ip is not None:
            del self._owner[ip]
        return ip

    def owner(self, ip: str) -> str | None:
        """Return the UID holding `ip`, or None."""
        return self._owner.get(ip)

    def in_use(self) -> dict[str, str]:
        """Return {uid: ip} of every allocation."""
        return dict(self._by_uid)


async def _ip(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "ip", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode().strip()


async def add_address(ip: str) -> None:
    """Put `ip`/32 on `lo` of the current namespace (already present is fine)."""
    code, err = await _ip("addr", "replace", f"{ip}/32", "dev", "lo")  # idempotent add
    if code != 0:
        raise OSError(f"ip addr replace {ip}: {err}")


async def del_address(ip: str) -> None:
    """Remove `ip`/32 from `lo` of the current namespace (already absent is fine)."""
    code, err = await _ip("addr", "del", f"{ip}/32", "dev", "lo")
    if code != 0 and "Cannot assign" not in err:
        raise OSError(f"ip addr del {ip}: {err}")


async def addresses_on_lo() -> set[str]:
    """Return every IPv4 address on `lo` of the current namespace."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "-o", "-4", "addr", "show", "dev", "lo", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return {line.split()[3].split("/")[0] for line in out.decode().splitlines()}
