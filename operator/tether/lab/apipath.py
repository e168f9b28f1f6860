"""How a lab pod reaches the API server, and cutting one pod off it (a network fault).

In a cluster a pod reaches the API server through the `kubernetes` Service, so a fault can
isolate one pod from it. Lab pods share one network namespace and would all connect from
127.0.0.1 to 127.0.0.1:6443, so nothing would tell one pod's API traffic from another's.
Each pod therefore gets its own API port, `pod_port(ip)` on 127.0.0.1, which an iptables DNAT
rule in the lab's namespace sends to the API server (same address: the server certificate
still matches). Cutting a pod off is then one REJECT rule on that port for new connections plus
`ss -K` of the established ones, both ends: the pod sees resets and refused connections,
exactly as behind a firewall that drops its flows; every other client is untouched.

Without iptables (a rootless lab lacking it) pods use 6443 directly and `cut` raises.
"""

from __future__ import annotations

import ipaddress
import subprocess

from tether.lab import layout

PORT_BASE = 30000  # pod ports: 30000 + the pod's offset in POD_CIDR (below 65536 for 8 nodes)
COMMENT = "tether-lab-api"


class ApiPathError(RuntimeError):
    """The pod has no API port of its own, or iptables refused a rule."""


def pod_port(ip: str) -> int | None:
    """The API port of the pod at `ip`; None for an address outside the pods' range."""
    net = ipaddress.ip_network(layout.POD_CIDR)
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr not in net:
        return None
    port = PORT_BASE + int(addr) - int(net.network_address)
    return port if port < 65536 else None


def _dnat(port: int) -> list[str]:
    return ["OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", str(port), "-m", "comment",
            "--comment", COMMENT, "-j", "DNAT", "--to-destination",
            f"127.0.0.1:{layout.APISERVER_PORT}"]  # fmt: skip


def _reject(port: int) -> list[str]:
    return ["OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "-m", "conntrack", "--ctstate", "NEW",
            "--ctorigdstport", str(port), "-m", "comment", "--comment", COMMENT, "-j", "REJECT",
            "--reject-with", "tcp-reset"]  # fmt: skip


def _iptables(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True,
                              check=False)  # fmt: skip
    except FileNotFoundError as e:
        return subprocess.CompletedProcess(args, 127, "", str(e))


def _ensure(table: str, rule: list[str]) -> None:
    if _iptables("-t", table, "-C", *rule).returncode == 0:
        return
    out = _iptables("-t", table, "-I" if table == "filter" else "-A", *rule)
    if out.returncode != 0:
        raise ApiPathError(f"iptables -t {table} {' '.join(rule)}: {out.stderr.strip()}")


def _remove(table: str, rule: list[str]) -> None:
    while _iptables("-t", table, "-D", *rule).returncode == 0:
        pass


def open_path(ip: str) -> str:
    """Return the API server URL the pod at `ip` uses (its own port when iptables works,
    6443 otherwise). Idempotent: a kubelet re-adopting the pod calls it again."""
    port = pod_port(ip)
    direct = f"https://127.0.0.1:{layout.APISERVER_PORT}"
    if port is None:
        return direct
    try:
        _ensure("nat", _dnat(port))
    except ApiPathError:
        return direct
    return f"https://127.0.0.1:{port}"


def close_path(ip: str) -> None:
    """Remove the pod's API port rules (the pod is gone)."""
    port = pod_port(ip)
    if port is not None:
        _remove("filter", _reject(port))
        _remove("nat", _dnat(port))


def _connections(port: int) -> list[int]:
    """Local ports of the pod's established connections to its API port."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "dst", "127.0.0.1", "dport", "=",
                          f":{port}"], capture_output=True, text=True, check=False)  # fmt: skip
    found = []
    for line in out.stdout.splitlines():
        local = line.split()[2] if len(line.split()) == 4 else line.split()[3]
        found.append(int(local.rsplit(":", 1)[1]))
    return found


def cut(ip: str) -> int:
    """Cut the pod at `ip` off the API server: new connections are refused (TCP reset) and
    established ones are aborted at both ends. Returns how many connections were aborted."""
    port = pod_port(ip)
    if port is None or _iptables("-t", "nat", "-C", *_dnat(port)).returncode != 0:
        raise ApiPathError(f"pod {ip} has no API port of its own (iptables unavailable?)")
    _ensure("filter", _reject(port))
    local_ports = _connections(port)
    for local in local_ports:  # the API server's end first, so its reset reaches the pod
        subprocess.run(["ss", "-K", "-tn", "sport", "=", f":{layout.APISERVER_PORT}", "dport",
                        "=", f":{local}"], capture_output=True, check=False)  # fmt: skip
    subprocess.run(["ss", "-K", "-tn", "dst", "127.0.0.1", "dport", "=", f":{port}"],
                   capture_output=True, check=False)  # fmt: skip
    return len(local_ports)


def heal(ip: str) -> None:
    """Let the pod at `ip` reach the API server again."""
    port = pod_port(ip)
    if port is not None:
        _remove("filter", _reject(port))
