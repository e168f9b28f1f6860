"""Pure builders of Pod status documents (no I/O), as a kubelet reports them.

A pod is Ready exactly when it is Running and every container is ready; the EndpointSlice
controller derives `ready`/`serving`/`terminating` of each endpoint from that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


def now() -> str:
    """Return the current time in Kubernetes' RFC 3339 form (seconds, `Z`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerState:
    """What the kubelet knows about one container; `to_status` renders it for the API."""

    name: str
    image: str
    container_id: str = ""
    running_since: str | None = None
    waiting_reason: str | None = "ContainerCreating"
    waiting_message: str = ""
    terminated: dict | None = None
    last_terminated: dict | None = None
    restart_count: int = 0
    ready: bool = False
    extra: dict = field(default_factory=dict)

    def to_status(self) -> dict:
        """Return this container's `containerStatuses` entry."""
        if self.running_since is not None:
            state = {"running": {"startedAt": self.running_since}}
        elif self.terminated is not None:
            state = {"terminated": self.terminated}
        else:
            waiting = {"reason": self.waiting_reason or "ContainerCreating"}
            if self.waiting_message:
                waiting["message"] = self.waiting_message
            state = {"waiting": waiting}
        doc = {
            "name": self.name,
            "image": self.image,
            "imageID": f"lab://{self.image}",
            "ready": self.ready and self.running_since is not None,
            "started": self.running_since is not None,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.container_id:
            doc["containerID"] = self.container_id
        return doc


def terminated(exit_code: int, started: str | None, reason: str | None = None) -> dict:
    """Return a `terminated` state for a process that exited with `exit_code`."""
    return {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": started or now(),
        "finishedAt": now(),
    }


def phase_of(containers: list[ContainerState], restart_policy: str) -> str:
    """Return the pod phase implied by its containers and restartPolicy.

    Running while any container runs or will be restarted; Succeeded when all exited 0 and
    none will restart; Failed when all finished for good and one failed; else Pending.
    """
    if any(c.running_since is not None for c in containers):
        return "Running"
    finished = [c.terminated for c in containers]
    if containers and all(finished):
        codes = [t["exitCode"] for t in finished if t]
        if restart_policy == "Always" or (restart_policy == "OnFailure" and any(codes)):
            return "Running"
        return "Succeeded" if not any(codes) else "Failed"
    if any(c.restart_count for c in containers):
        return "Running"
    return "Pending"


def _condition(kind: str, ok: bool, since: dict[str, tuple[bool, str]], reason: str = "") -> dict:
    prev = since.get(kind)
    if prev is None or prev[0] != ok:
        since[kind] = (ok, now())
    cond = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None,
            "lastTransitionTime": since[kind][1]}  # fmt: skip
    if reason and not ok:
        cond["reason"] = reason
    return cond


def pod_status(
    containers: list[ContainerState],
    restart_policy: str,
    pod_ip: str | None,
    host_ip: str,
    start_time: str,
    transitions: dict[str, tuple[bool, str]],
) -> dict:
    """Return the pod's full `status` (replaces the previous one under a merge patch).

    `transitions` remembers when each condition last changed and is updated in place, so
    `lastTransitionTime` only moves when a condition flips.
    """
    phase = phase_of(containers, restart_policy)
    all_ready = bool(containers) and all(c.to_status()["ready"] for c in containers)
    ready = phase == "Running" and all_ready
    reason = "" if ready else "ContainersNotReady"
    status = {
        "phase": phase,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "conditions": [
            _condition("PodReadyToStartContainers", pod_ip is not None, transitions),
            _condition("Initialized", True, transitions),
            _condition("Ready", ready, transitions, reason),
            _condition("ContainersReady", all_ready, transitions, reason),
            _condition("PodScheduled", True, transitions),
        ],
        "containerStatuses": [c.to_status() for c in containers],
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
