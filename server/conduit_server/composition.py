"""The composition root: builds each service's app from settings and shared resources."""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

from conduit_server.runtime.resources import Resources
from conduit_server.runtime.server import Binding, ServiceApp
from conduit_server.runtime.settings import ServiceName


class SkeletonApp:
    """A service whose contract is served but whose methods are not built yet (UNIMPLEMENTED)."""

    def __init__(self, name: str, bindings: Sequence[Binding]) -> None:
        self.name = name
        self._bindings = bindings

    def bindings(self) -> Sequence[Binding]:
        return self._bindings

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


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
    if name == "webhooks":
        from conduit_server.webhooks.app import WebhooksApp

        return WebhooksApp.from_resources(resources)
    from conduit_server.realtime.app import RealtimeApp

    return RealtimeApp.from_resources(resources)


def unimplemented(messages: ModuleType, stubs: ModuleType, service: str) -> Binding:
    """A binding of the generated servicer base: every method answers UNIMPLEMENTED."""
    return Binding(messages.DESCRIPTOR.services_by_name[service],
                   getattr(stubs, f"add_{service}Servicer_to_server"), getattr(stubs, f"{service}Servicer")())
