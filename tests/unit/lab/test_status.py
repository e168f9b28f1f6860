"""Pod status follows the kubelet's rules for phase, readiness and transitions."""

from tether.lab.kubelet.status import ContainerState, phase_of, pod_status, terminated


def _running(name="c", ready=True):
    return ContainerState(name, "img", running_since="2026-01-01T00:00:00Z", ready=ready,
                          waiting_reason=None)  # fmt: skip


def _conditions(status):
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_ready_only_when_every_container_is_ready():
    t = {}
    st = pod_status([_running("a"), _running("b", ready=False)], "Always", "10.244.0.2",
                    "10.240.0.1", "2026-01-01T00:00:00Z", t)  # fmt: skip
    assert st["phase"] == "Running" and st["podIP"] == "10.244.0.2"
    assert _conditions(st)["Ready"] == "False"
    st = pod_status([_running("a"), _running("b")], "Always", "10.244.0.2", "10.240.0.1",
                    "2026-01-01T00:00:00Z", t)  # fmt: skip
    assert _conditions(st)["Ready"] == "True"
    assert st["podIPs"] == [{"ip": "10.244.0.2"}]


def test_transition_time_moves_only_on_a_flip():
    t = {}
    first = pod_status([_running()], "Always", "10.244.0.2", "h", "s", t)
    again = pod_status([_running()], "Always", "10.244.0.2", "h", "s", t)
    assert first["conditions"] == again["conditions"]


def test_phases_per_restart_policy():
    done = ContainerState("c", "img", waiting_reason=None, terminated=terminated(0, None))
    failed = ContainerState("c", "img", waiting_reason=None, terminated=terminated(3, None))
    assert phase_of([done], "Never") == "Succeeded"
    assert phase_of([failed], "Never") == "Failed"
    assert phase_of([failed], "OnFailure") == "Running"
    assert phase_of([done], "OnFailure") == "Succeeded"
    assert phase_of([ContainerState("c", "img")], "Always") == "Pending"


def test_not_running_container_is_never_reported_ready():
    c = ContainerState("c", "img", ready=True)
    assert c.to_status()["ready"] is False
    assert c.to_status()["state"] == {"waiting": {"reason": "ContainerCreating"}}
