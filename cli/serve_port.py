"""Where Ray Serve's HTTP proxy listens, read back from the proxy.

Serve binds the port it is given; given 0, the kernel picks a free one, and the proxy is the
only one that knows which. Picking a free port first and passing it on leaves a window in which
another process can take it; asking the proxy does not.
"""

from __future__ import annotations

import time
from typing import Any


def _bound_http_ports(proxy: Any) -> list[int]:
    """Runs inside the proxy actor. Serve keeps no reference to its uvicorn server that we can
    ask for, so find the server object and read its listening sockets."""
    import gc

    import uvicorn

    return [sock.getsockname()[1] for obj in gc.get_objects() if isinstance(obj, uvicorn.Server)
            for server in (obj.servers or []) for sock in server.sockets]


def serve_http_port(*, timeout_s: float = 120.0) -> int:
    """The port of this node's Serve HTTP proxy (after `serve.start`)."""
    import ray
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    assert client is not None, "serve.start() first"
    controller = client._controller
    node_id = ray.get_runtime_context().get_node_id()
    deadline = time.monotonic() + timeout_s
    while True:
        proxies = ray.get(controller.get_proxies.remote(), timeout=timeout_s)
        proxy = proxies.get(node_id) or next(iter(proxies.values()), None)
        if proxy is not None:
            ray.get(proxy.ready.remote(), timeout=timeout_s)
            ports = ray.get(proxy.__ray_call__.remote(_bound_http_ports), timeout=timeout_s)
            if ports:
                return int(ports[0])
        if time.monotonic() > deadline:
            raise TimeoutError(f"Serve's HTTP proxy did not report a port in {timeout_s:.0f}s")
        time.sleep(0.2)
