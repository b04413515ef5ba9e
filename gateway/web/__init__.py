"""What a browser gets from the gateway itself, with no CDN and no npm for a `pip install` user:
the home page at `/`, GraphiQL at GET /graphql and the inbox at /inbox.

GraphiQL (frontend-graphiql/) and the inbox (frontend-sample/) are built with Vite into this
package (`graphiql/`, `inbox/`) and committed; CI rebuilds both and fails if they differ.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

WEB_DIR = Path(__file__).resolve().parent
INBOX_DIR = WEB_DIR / "inbox"
GRAPHIQL_PAGE = WEB_DIR / "graphiql" / "index.html"

# What the start-up line and the home page name.
PAGES = {"/": "home page", "/inbox/": "inbox", "/graphql": "GraphiQL"}


class Inbox:
    """The built inbox under /inbox, looked up at each request: a build made while the gateway
    runs is served at once, and a missing one is a 404 that says how to build it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files = StaticFiles(directory=directory, html=True, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not (self.directory / "index.html").is_file():
            response = PlainTextResponse(
                f"the inbox is not built in {self.directory}: run `npm ci && npm run build` "
                "in frontend-sample/, or set INBOX_DIR to a built inbox", status_code=404)
            await response(scope, receive, send)
            return
        await self.files(scope, receive, send)


def graphiql_page() -> Response:
    """GraphiQL as one self-contained page (scripts and styles inlined)."""
    if not GRAPHIQL_PAGE.is_file():
        return PlainTextResponse("GraphiQL is not built: run `npm ci && npm run build` in "
                                 "frontend-graphiql/", status_code=404)
    return FileResponse(GRAPHIQL_PAGE, media_type="text/html; charset=utf-8")


HOME = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Messenger Gateway</title>
<style>
  body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;
         padding: 0 1rem; color: #1c1e21; }}
  h1 {{ font-size: 1.6rem; margin-bottom: .25rem; }}
  p.lead {{ color: #606770; margin-top: 0; }}
  ul {{ list-style: none; padding: 0; }}
  li {{ padding: .6rem 0; border-bottom: 1px solid #e4e6eb; }}
  a {{ color: #0866ff; font-weight: 600; text-decoration: none; }}
  a:hover {{ text-decoration: underline; }}
  code {{ font-size: .9em; }}
</style>
</head>
<body>
<h1>Messenger Gateway</h1>
<p class="lead">Facebook Pages' conversations, with Airy's API. Everything below is served by
this gateway; nothing here needs the internet.</p>
<ul>
{links}
</ul>
</body>
</html>
"""

LINKS = [
    ("/inbox/", "Inbox", "the conversations, live: read, answer, see each reply delivered"),
    ("/sandbox/", "Sandbox", "write to the page as a customer would, with no Meta app"),
    ("/graphql", "GraphiQL", "queries, mutations and live subscriptions, with the schema's docs"),
    ("/openapi.json", "API reference", "the REST routes (<code>POST /&lt;noun&gt;.&lt;verb&gt;"
                                       "</code>) as OpenAPI 3.1"),
    ("/health", "Health", "200 while the store answers"),
]


async def home(request: Request) -> Response:
    """Links to what this gateway serves; the sandbox only when it is mounted (a link that
    answers 404 would send a newcomer the wrong way)."""
    mounted = {route.path for route in request.app.routes if isinstance(route, Mount)}
    links = "\n".join(
        f'<li><a href="{escape(href)}">{name}</a> — {text}</li>'
        for href, name, text in LINKS
        if href != "/sandbox/" or "/sandbox" in mounted)
    return HTMLResponse(HOME.format(links=links))
