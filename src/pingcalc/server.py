"""Running the app under uvicorn: one process or several workers, graceful on SIGTERM."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import uvicorn

from pingcalc.settings import Settings


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown, so the process would die by the
    signal (exit -15). A clean, completed shutdown is a success: exit 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings pingcalc always uses."""
    return {
        "host": settings.host,
        "port": settings.port,
        # No version banner (OWASP A05); our own JSON access event replaces uvicorn's.
        "server_header": False,
        "log_config": None,
        "access_log": False,
        # X-Forwarded-For is honoured only from proxies the operator names.
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": settings.forwarded_allow_ips or "",
        # In-flight requests get this long after SIGTERM; new connections are refused at once.
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "lifespan": "on",
    }


def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; with workers > 1, uvicorn supervises worker processes."""
    options = uvicorn_options(settings)
    if settings.workers > 1:
        # Each worker builds its own app from the environment: pass our effective choices down.
        os.environ["PINGCALC_HOST"] = settings.host
        os.environ["PINGCALC_PORT"] = str(settings.port)
        os.environ["PINGCALC_TOKENS_FILE"] = str(settings.tokens_file)
        uvicorn.run(
            "pingcalc.app:app_from_environment",
            factory=True,
            workers=settings.workers,
            **options,
        )
        return
    from pingcalc.app import create_app

    _Server(uvicorn.Config(create_app(settings), **options)).run()
