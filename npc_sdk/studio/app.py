"""The studio's HTTP + WebSocket server: the WebSocket gateway (server/ws_gateway.py) mounted on one port with the
page's static files, in the server's own process and asyncio loop.

    GET /                   the page (static/index.html, studio.css, studio.js: no build step, nothing fetched)
    GET /scenes/NAME.png    the sample scenes (npc_sdk/assets/scenes)
    GET /ws                 the WebSocket: every NpcService method, forwarded over gRPC as the gateway does
                            (docs/websocket.md), plus the studio's own methods (methods.py)

Every request's Host must be the address the studio serves (a DNS-rebinding page names its own host), and a
WebSocket upgrade or any request other than GET must come from the page's own origin (`Origin` equal to
http://HOST:PORT): anything else gets 403. Only GET is served: other methods get 405. No key is ever in a
static file: the page asks for the server's API key and sends it with each call, as the gateway's clients do.
"""

from __future__ import annotations

import email.utils
import ipaddress
from dataclasses import dataclass, field
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ..server.ws_gateway import LocalMethod, WsGateway

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
WS_PATH = "/ws"


def sample_scenes() -> dict[str, Path]:
    """The sample screenshots the page offers, by file name."""
    folder = resources.files("npc_sdk") / "assets" / "scenes"
    return {p.name: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".png")}


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass
class StudioGateway(WsGateway):
    """The gateway with the studio's page, Origin/Host checks and methods (`local` from methods.StudioMethods)."""

    local: dict[str, LocalMethod] = field(default_factory=dict)
    scenes: dict[str, Path] = field(default_factory=sample_scenes)

    # ---- what the gateway asks -------------------------------------------------------------------------------
    def local_methods(self) -> dict[str, LocalMethod]:
        return self.local

    def origins(self) -> None:
        return None  # process_request checks Origin (and Host) itself

    def banner(self, scheme: str) -> str:
        return f"npc-sdk: studio on {self.url} (open it in a browser; the page and its WebSocket)"

    def ready_fields(self) -> dict[str, Any]:
        return {"studio_port": self.port}

    # ---- the page's address --------------------------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert and self.tls_key else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.hosts()[0]}/"

    def hosts(self) -> list[str]:
        """The Host headers the studio answers: its address and port (and localhost's name for loopback)."""
        host = self.host.strip("[]")
        shown = f"[{host}]" if ":" in host else host
        names = [f"{shown}:{self.port}"]
        if _is_loopback(host) and host != "localhost":
            names.append(f"localhost:{self.port}")
        return names

    def allowed(self, request: Request) -> str | None:
        """Why the request is refused (403), or None. Bound to every address, any Host is answered."""
        host = request.headers.get("Host", "")
        if self.host.strip("[]") not in ("0.0.0.0", "::", "") and host not in self.hosts():
            return f"Host: {host!r} is not this studio's address ({self.hosts()[0]})"
        upgrade = "websocket" in request.headers.get("Upgrade", "").lower()
        if upgrade or request.method != "GET":
            origin = request.headers.get("Origin")
            if origin != f"{self.scheme}://{host}":
                return f"Origin: {origin!r} is not the studio page's own origin ({self.scheme}://{host})"
        return None

    # ---- every request -----------------------------------------------------------------------------------
    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        refused = self.allowed(request)
        if refused is not None:
            return _text(HTTPStatus.FORBIDDEN, refused + "\n")
        if request.method != "GET":
            return _text(HTTPStatus.METHOD_NOT_ALLOWED, "the studio serves GET only\n", Allow="GET")
        path = request.path.split("?", 1)[0]
        if "websocket" in request.headers.get("Upgrade", "").lower():
            return None if path == WS_PATH else _text(HTTPStatus.NOT_FOUND, f"no WebSocket at {path}\n")
        return self.static(path)

    def static(self, path: str) -> Response:
        if path in ("/", "/index.html"):
            file = STATIC / "index.html"
        elif path.startswith("/scenes/") and path[len("/scenes/") :] in self.scenes:
            file = self.scenes[path[len("/scenes/") :]]
        elif path.count("/") == 1 and path[1:] in _static_names():
            file = STATIC / path[1:]
        else:
            return _text(HTTPStatus.NOT_FOUND, f"no {path} here\n")
        body = file.read_bytes()
        csp = (
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
            f"connect-src 'self' {self.scheme.replace('http', 'ws')}://{self.hosts()[0]}; frame-ancestors 'none'"
        )
        return _response(
            HTTPStatus.OK,
            body,
            **{
                "Content-Type": CONTENT_TYPES.get(file.suffix, "application/octet-stream"),
                "Cache-Control": "no-store",
                "Content-Security-Policy": csp,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )


def _static_names() -> set[str]:
    return {p.name for p in STATIC.iterdir() if p.is_file() and p.suffix in CONTENT_TYPES}


def _response(status: HTTPStatus, body: bytes, **headers: str) -> Response:
    fixed = [
        ("Date", email.utils.formatdate(usegmt=True)),
        ("Connection", "close"),
        ("Content-Length", str(len(body))),
    ]
    return Response(status.value, status.phrase, Headers([*fixed, *headers.items()]), body)


def _text(status: HTTPStatus, text: str, **headers: str) -> Response:
    return _response(status, text.encode(), **{"Content-Type": "text/plain; charset=utf-8", **headers})
