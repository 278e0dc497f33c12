"""The viewer: the web player for every splat asset the toolkit reads or writes.

    from viewer import serve
    with serve("scene.spz", port=0) as srv:   # `splat view`: the player plus this one asset
        print(srv.url)

The browser fetches the file and decodes it itself (the client in ``viewer/client/``, built
from ``viewer/web/``); the server sends files, plus a small local API backed by the
toolkit's renderer (:mod:`viewer.view_api`). Static sites for any web host:

    from viewer import publish, serve_web
    publish(["scene.spz", "clip.gsv"], "site/")
    srv = serve_web(["scene.spz", "scene.lgs"], port=0); print(srv.url); srv.stop()
"""
from .cli import serve
from .site import publish
from .view_api import ViewApi
from .web_server import WebPlayerServer, serve_web

__all__ = [
    "ViewApi",
    "WebPlayerServer",
    "publish",
    "serve",
    "serve_web",
]
