"""Fault injection on the loopback kubelet (lab only; a real kubelet has no such endpoint).

`POST /lab/kill/<namespace>/<pod>/<container>` on the kubelet's HTTPS port kills one running
container without grace, as `kill -9` of its process would on a node: a process container's
process group gets SIGKILL; a backend container (its servers live inside the kubelet) closes
every socket at once and exits 137. Either restarts per the pod's restartPolicy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from tether.lab.kubelet.agent import Kubelet


def routes(kubelet: Kubelet) -> list[web.RouteDef]:
    """The fault routes of `kubelet`'s HTTPS endpoint."""

    async def kill(request: web.Request) -> web.Response:
        ns, pod, name = (request.match_info[k] for k in ("ns", "pod", "container"))
        for w in list(kubelet.workers.values()):
            if (w.namespace, w.name) != (ns, pod):
                continue
            for c in w.containers:
                if c.name == name and c.state.running_since is not None:
                    await c.crash()
                    return web.json_response({"killed": f"{ns}/{pod}/{name}"})
        raise web.HTTPNotFound(text=f"no running container {name!r} in pod {ns}/{pod}")

    return [web.post("/lab/kill/{ns}/{pod}/{container}", kill)]
