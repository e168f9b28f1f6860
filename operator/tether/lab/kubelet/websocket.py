"""WebSocket echo of the default pod backend: an upgrade request on any path is accepted.

The server first sends one text message naming the pod (JSON: ``pod``, ``namespace``,
``podIP``, ``path``, ``headers``), then echoes every message as it came (text or binary);
pings are answered, a close is answered and ends the connection. The 101 response carries the
pod's ``X-Pod-*`` headers like every other response. The protocol is ``websockets``' sans-I/O
``ServerProtocol``; the backend's connection hands it the raw bytes.
"""

from __future__ import annotations

import json

from tether.lab.kubelet.httpbin import Pod, Request


def is_websocket(req: Request) -> bool:
    """True for a WebSocket upgrade request (``Upgrade: websocket``)."""
    return any(k.lower() == "upgrade" and "websocket" in v.lower() for k, v in req.headers)


class Echo:
    """One WebSocket connection: feed it bytes, write what it returns (see module docstring)."""

    def __init__(self, req: Request, pod: Pod) -> None:
        from websockets.frames import Opcode
        from websockets.http11 import Request as Handshake
        from websockets.server import ServerProtocol

        self._opcode = Opcode
        self.protocol = ServerProtocol(max_size=None)
        head = f"GET {req.target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers)
        self.protocol.receive_data((head + "\r\n").encode("latin-1"))
        handshake = next(e for e in self.protocol.events_received() if isinstance(e, Handshake))
        response = self.protocol.accept(handshake)
        for name, value in (("X-Pod-Name", pod.name), ("X-Pod-Namespace", pod.namespace),
                            ("X-Pod-IP", pod.ip)):  # fmt: skip
            response.headers[name] = value
        self.protocol.send_response(response)
        self.open = response.status_code == 101
        if self.open:
            hello = {"pod": pod.name, "namespace": pod.namespace, "podIP": pod.ip,
                     "path": req.target, "headers": dict(req.headers)}  # fmt: skip
            self.protocol.send_text(json.dumps(hello).encode())

    def feed(self, data: bytes) -> bytes:
        """Bytes from the client in; bytes for the client out (echoes, pongs, close)."""
        self.protocol.receive_data(data)
        op, protocol = self._opcode, self.protocol
        for frame in protocol.events_received():  # fragments are echoed as fragments
            if frame.opcode is op.TEXT:
                protocol.send_text(frame.data, fin=frame.fin)
            elif frame.opcode is op.BINARY:
                protocol.send_binary(frame.data, fin=frame.fin)
            elif frame.opcode is op.CONT:
                protocol.send_continuation(frame.data, fin=frame.fin)
        return self.pending()

    def going_away(self) -> bytes:
        """The pod stops: a close frame (1001 going away) to send before closing."""
        if self.open and not self.done():
            self.protocol.send_close(1001, "pod stopping")
        return self.pending()

    def pending(self) -> bytes:
        """What the protocol has to send now (the handshake, echoes, pongs, a close)."""
        return b"".join(self.protocol.data_to_send())

    def done(self) -> bool:
        """True once the closing handshake is over: the connection may close."""
        return self.protocol.close_expected() or not self.open
