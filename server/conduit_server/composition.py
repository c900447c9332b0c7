"""The composition root: builds each service's app from settings and shared resources."""

from __future__ import annotations

from conduit_server.runtime.resources import Resources
from conduit_server.runtime.server import ServiceApp
from conduit_server.runtime.settings import ServiceName


def build_app(name: ServiceName, resources: Resources) -> ServiceApp:
    if name == "articles":
        from conduit_server.articles.app import ArticlesApp

        return ArticlesApp.from_resources(resources)
    if name == "users":
        from conduit_server.users.app import UsersApp

        return UsersApp.from_resources(resources)
    if name == "search":
        from conduit_server.search.app import SearchApp

        return SearchApp.from_resources(resources)
    from conduit_server.realtime.app import RealtimeApp

    return RealtimeApp.from_resources(resources)
