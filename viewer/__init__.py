"""Browser viewer (viser) for every splat asset the toolkit reads or writes.

    from viewer import serve
    srv = serve("scene.spz")          # decodes, then serves http://127.0.0.1:8080
    srv.wait_first_frame(); srv.stop()

Asset types are plug-ins (:mod:`viewer.assets`): a loader plus a per-tab view with its
GUI panel. Scenes push splats through :class:`viewer.splat_layer.SplatLayer`, which
updates a tab's splats in place (display settings, SH colour, or new content such as
the next frame of a video).

The web player (the browser decodes the file itself; ``splat view --web``) and static sites:

    from viewer import serve_web, publish
    srv = serve_web(["scene.spz"], port=0); print(srv.url); srv.stop()
    publish(["scene.spz", "scene.lgs"], "site/")
"""
from .assets import AssetInfo, AssetType, CameraPose, ClientView, ViewerAsset, asset_types, open_asset
from .cli import serve
from .server import ClientContext, ViewerServer
from .site import publish
from .splat_layer import DisplaySettings, SplatLayer
from .web_server import WebPlayerServer, serve_web

__all__ = [
    "AssetInfo",
    "AssetType",
    "CameraPose",
    "ClientContext",
    "ClientView",
    "DisplaySettings",
    "SplatLayer",
    "ViewerAsset",
    "ViewerServer",
    "WebPlayerServer",
    "asset_types",
    "open_asset",
    "publish",
    "serve",
    "serve_web",
]
