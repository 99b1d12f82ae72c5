"""`GET /metrics`: the Prometheus exposition of the whole cluster's AICO metrics.

The figures are recorded where the work happens (aico/metrics.py) and summed across processes
by the metrics hub (actors/metrics_hub.py), so any API replica answers for all of them.

Who may read it: Prometheus with `Authorization: Bearer <AICO_OBSERVABILITY_METRICS_TOKEN>`
(scrape config `authorization: {credentials: ...}`), or a principal with the admin role. The
figures carry no organization, session or user: only counts and latencies per node and stage.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from actors.metrics_hub import cluster_snapshot, start_metrics_push
from aico import metrics
from aico.settings import Settings
from serve_apps.auth import authenticate, bearer_token
from serve_apps.deps import PoolDep, StateDep, oidc_verifier

router = APIRouter(tags=["observability"])


async def authorize_scrape(state: StateDep, pool: PoolDep,
                           authorization: Annotated[str | None, Header()] = None) -> None:
    """The scrape token, or else an admin's bearer token (401 without one, 403 below admin)."""
    token = bearer_token(authorization)
    expected = state.settings.observability.metrics_token
    if expected and hmac.compare_digest(token.encode(), expected.encode()):
        return
    principal = await authenticate(token, pool=pool, settings=state.settings,
                                   oidc_verifier=oidc_verifier(state))
    principal.require("admin")


@router.get("/metrics", dependencies=[Depends(authorize_scrape)],
            response_class=Response)
async def prometheus_metrics() -> Response:
    body = metrics.render(await cluster_snapshot())
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)


def start_metrics_push_on_ray(settings: Settings) -> None:
    """An API replica on Ray pushes its figures (chat steps, its warm pool) to the hub."""
    import ray

    if ray.is_initialized():
        start_metrics_push(settings.observability.metrics_push_s)
