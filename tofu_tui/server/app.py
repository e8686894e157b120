"""The local dashboard's FastAPI application (`create_app`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tofu_tui import __version__
from tofu_tui.server import schemas
from tofu_tui.server.errors import error_response, install_handlers
from tofu_tui.server.migrate import upgrade
from tofu_tui.server.routes import enroll, procedures, runs, stations, stream
from tofu_tui.server.settings import Settings
from tofu_tui.server.state import ServerState

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "no such script on this server",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
}


class BodyLimit:
    """Refuse request bodies over the limit with 413, whether announced by
    Content-Length or streamed; attachment uploads have their own, larger limit."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_upload = scope["method"] == "PUT" and scope["path"].endswith("/content")
        limit = self.settings.max_attachment_bytes if is_upload else self.settings.max_request_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False
            if too_big:
                response = error_response(413, "payload_too_large", f"The request body exceeds {limit} bytes.")
                await response(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"The request body exceeds {limit} bytes.")
            return message

        await self.app(scope, limited_receive, send)


def _script(name: str) -> str | None:
    """install.sh / install.ps1 from the checkout's root or the package, if present."""
    candidates = [REPO_ROOT / name]
    try:
        candidates.append(Path(str(resources.files("tofu_tui") / "install" / name)))
    except (ModuleNotFoundError, TypeError):
        pass
    for path in candidates:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


def create_app(settings: Settings, *, migrate: bool = True) -> FastAPI:
    """The application for one data folder. `migrate` brings the database to the
    current schema first (the CLI does it too; it is idempotent)."""
    if migrate:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade(settings.database_url)
    state = ServerState(settings)
    state.startup()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.dispose()

    app = FastAPI(
        title="tofu-tui local dashboard",
        version=__version__,
        description="TofuPilot-compatible station API (see spec/api.md).",
        lifespan=lifespan,
    )
    app.state.server = state
    install_handlers(app)
    app.add_middleware(BodyLimit, settings=settings)

    @app.get("/api/health", response_model=schemas.Health, tags=["health"])
    def health() -> schemas.Health:
        return schemas.Health(status="ok")

    def serve_script(name: str, media_type: str) -> Any:
        def handler() -> Any:
            text = _script(name)
            if text is None:
                return error_response(404, "not_found", f"This server has no {name}.")
            return PlainTextResponse(text, media_type=media_type)

        return handler

    app.add_api_route(
        "/install.sh", serve_script("install.sh", "text/plain"), methods=["GET"], tags=["install"],
        response_class=PlainTextResponse, responses=SCRIPT_RESPONSES,
    )
    app.add_api_route(
        "/install.ps1", serve_script("install.ps1", "text/plain"), methods=["GET"], tags=["install"],
        response_class=PlainTextResponse, responses=SCRIPT_RESPONSES,
    )
    for module in (enroll, stations, procedures, runs, stream):
        # Routes go straight onto the app: this FastAPI re-derives an included router's
        # routes on every request, which costs more than the run insert itself.
        for route in module.router.routes:
            app.router.routes.append(route)
    _declare_run_body(app)
    return app


def _declare_run_body(app: FastAPI) -> None:
    """`POST /api/v2/runs` parses its body itself (speed); declare its schema anyway."""
    from fastapi.openapi.utils import get_openapi

    from tofu_tui.models.run import RunCreate

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            run_schema = RunCreate.model_json_schema(ref_template="#/components/schemas/{model}")
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            components.update(run_schema.pop("$defs", {}))
            components["RunCreate"] = run_schema
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


