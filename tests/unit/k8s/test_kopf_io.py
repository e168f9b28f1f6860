"""tether uses kopf's own API client (kopf._cogs, kopf pinned in pyproject.toml). This fails
when a kopf upgrade changes the shape of what tether.k8s.kopf_io relies on."""

from __future__ import annotations

import inspect

from kopf._cogs.clients import api, errors
from kopf._cogs.configs.configuration import OperatorSettings

from tether.k8s import kopf_io


def test_kopf_client_functions_keep_their_parameters():
    assert {"settings", "payload", "headers", "backoffs", "logger"} <= set(
        inspect.signature(api.request).parameters
    )
    assert {"settings", "timeout", "logger"} <= set(inspect.signature(api.stream).parameters)
    assert issubclass(errors.APIConflictError, errors.APIError)
    assert errors.APIConflictError({"code": 409}, status=409, headers={}).status == 409


def test_settings_used_by_tether_exist():
    s = OperatorSettings()
    for path in ("posting.reporting_component", "posting.reporting_instance",
                 "peering.lifetime", "peering.priority", "watching.server_timeout"):  # fmt: skip
        part, attr = path.split(".")
        assert hasattr(getattr(s, part), attr), path


def test_urls():
    assert kopf_io.url(kopf_io.CONFIGMAPS, "tether-system", "t") == (
        "/api/v1/namespaces/tether-system/configmaps/t"
    )
    dr = kopf_io.destinationrules("v1beta1")
    assert kopf_io.url(dr, "default", "x", "status") == (
        "/apis/networking.istio.io/v1beta1/namespaces/default/destinationrules/x/status"
    )
    assert kopf_io.url(kopf_io.ENDPOINTSLICES) == "/apis/discovery.k8s.io/v1/endpointslices"
