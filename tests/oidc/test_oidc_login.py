"""OpenID Connect sign-in against a real, certified provider (panva's oidc-provider), through
Envoy over HTTPS, the test acting as the browser (docs/decisions/0044-oidc-login.md)."""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest

from tests.e2e.conftest import RunningMesh
from tests.oidc.conftest import CLIENT_ID
from tests.oidc.provider import RunningProvider

pytestmark = pytest.mark.e2e
COOKIE = "__Host-conduit-oidc"


@dataclass(frozen=True)
class Person:
    """An account at the provider."""

    account: str
    email: str
    email_verified: bool = True
    preferred_username: str = ""


def person(*, verified: bool = True, email: str = "") -> Person:
    name = f"oidc{uuid.uuid4().hex[:8]}"
    return Person(name, email or f"{name}@example.org", verified, preferred_username=name)


class Browser:
    """One browser: its own cookies for the mesh and the provider; redirects followed by hand."""

    def __init__(self, mesh: RunningMesh) -> None:
        self.mesh = mesh
        self.http = httpx.Client(verify=ssl.create_default_context(cafile=mesh.ca), timeout=15,
                                 follow_redirects=False)

    def start(self) -> str:
        """GET /api/auth/oidc/login: the provider's authorization URL."""
        answer = self.http.get(f"{self.mesh.https}/api/auth/oidc/login")
        assert answer.status_code == 302, answer.text
        assert COOKIE in self.http.cookies
        return answer.headers["location"]

    def authorize(self, url: str, who: Person) -> str:
        """Go through the provider's login and consent; the callback URL it redirects to."""
        for _ in range(10):
            answer = self.http.get(url)
            assert answer.status_code in (302, 303), answer.text
            url = urljoin(url, answer.headers["location"])
            if url.startswith(self.mesh.https):
                return url
            if "/interaction/" in url:
                form = {"account": who.account, "email": who.email,
                        "email_verified": "true" if who.email_verified else "false",
                        "preferred_username": who.preferred_username}
                posted = self.http.post(url, data=form)
                assert posted.status_code == 303, posted.text
                url = urljoin(url, posted.headers["location"])
        raise AssertionError(f"the provider never redirected back (last: {url})")

    def callback(self, url: str) -> httpx.Response:
        return self.http.get(url)

    def sign_in(self, who: Person) -> httpx.Response:
        return self.callback(self.authorize(self.start(), who))

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def browser(oidc_mesh: RunningMesh) -> Iterator[Browser]:
    opened = Browser(oidc_mesh)
    yield opened
    opened.close()


@pytest.fixture
def other_browser(oidc_mesh: RunningMesh) -> Iterator[Browser]:
    opened = Browser(oidc_mesh)
    yield opened
    opened.close()


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    return urlunsplit(parts._replace(query=urlencode({**query, **changes})))


def refusal(answer: httpx.Response, status: int = 401) -> str:
    assert answer.status_code == status, answer.text
    errors: dict[str, list[str]] = answer.json()["errors"]
    return " ".join(message for messages in errors.values() for message in messages)


def current_user(mesh: RunningMesh, token: str) -> dict[str, Any]:
    with httpx.Client(verify=ssl.create_default_context(cafile=mesh.ca), timeout=15) as http:
        answer = http.get(f"{mesh.https}/api/user", headers={"Authorization": f"Token {token}"})
    assert answer.status_code == 200, answer.text
    user: dict[str, Any] = answer.json()["user"]
    return user


def test_start_redirects_to_the_provider_with_pkce_and_a_binding_cookie(
        browser: Browser, provider: RunningProvider, redirect_uri: str) -> None:
    answer = browser.http.get(f"{browser.mesh.https}/api/auth/oidc/login")

    assert answer.status_code == 302
    assert answer.headers["cache-control"] == "no-store"
    location = urlsplit(answer.headers["location"])
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{provider.issuer}/auth"
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == redirect_uri
    assert query["code_challenge_method"] == "S256"
    assert set(query["scope"].split()) >= {"openid", "email"}
    assert len(query["state"]) >= 43
    assert len(query["nonce"]) >= 43
    assert len(query["code_challenge"]) == 43
    cookie = answer.headers["set-cookie"]
    for attribute in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/"):
        assert attribute in cookie
    # The binding is never in the URL the provider (or its logs) sees.
    assert browser.http.cookies[COOKIE] not in answer.headers["location"]


def test_a_full_sign_in_ends_with_mesh_tokens_that_work(browser: Browser, oidc_mesh: RunningMesh) -> None:
    who = person()

    answer = browser.sign_in(who)

    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert "Max-Age=0" in answer.headers["set-cookie"]  # the binding is spent
    user = answer.json()["user"]
    assert user["email"] == who.email
    assert user["username"] == who.preferred_username
    assert current_user(oidc_mesh, user["token"])["email"] == who.email
    # Signing in again finds the same account by the provider's subject.
    again = browser.sign_in(who).json()["user"]
    assert again["username"] == user["username"]


def test_a_taken_username_is_made_unique(browser: Browser, other_browser: Browser) -> None:
    first, second = person(), person()
    second = Person(second.account, second.email, preferred_username=first.preferred_username)

    one = browser.sign_in(first).json()["user"]
    two = other_browser.sign_in(second).json()["user"]

    assert one["username"] == first.preferred_username
    assert two["username"].startswith(f"{first.preferred_username}-")


def test_a_tampered_state_is_refused(browser: Browser) -> None:
    callback = browser.authorize(browser.start(), person())

    state = parse_qs(urlsplit(callback).query)["state"][0]
    message = refusal(browser.callback(with_query(callback, state="x" + state)))

    assert "state" in message


def test_a_state_brought_by_another_browser_is_refused_and_spent(browser: Browser, other_browser: Browser) -> None:
    callback = browser.authorize(browser.start(), person())
    other_browser.start()  # a binding cookie of its own, for another sign-in

    assert "did not start" in refusal(other_browser.callback(callback))
    # The state was spent by that first use: the right browser cannot use it any more either.
    assert "state" in refusal(browser.callback(callback))


def test_a_replayed_code_is_refused(browser: Browser) -> None:
    who = person()
    callback = browser.authorize(browser.start(), who)
    assert browser.callback(callback).status_code == 200

    # The same callback again: its state is spent.
    assert "state" in refusal(browser.callback(callback))
    # The code under a fresh state of the same browser (the only way to present it again): the
    # provider refuses it (spent, and the fresh PKCE verifier is not the one it was issued for).
    fresh = browser.start()
    state = parse_qs(urlsplit(fresh).query)["state"][0]
    assert "refused the code" in refusal(browser.callback(with_query(callback, state=state)))


def test_an_id_token_with_another_nonce_is_refused(browser: Browser) -> None:
    # The provider is sent a nonce of the attacker's choosing: its ID token carries that one.
    authorization = with_query(browser.start(), nonce="nonce-the-mesh-never-issued-" + uuid.uuid4().hex)

    message = refusal(browser.callback(browser.authorize(authorization, person())))

    assert "nonce" in message


@pytest.mark.parametrize(("claims", "named"), [
    ({"aud": "another-client"}, "aud"),
    ({"aud": ["another-client", CLIENT_ID]}, "azp"),
    ({"iss": "https://another-issuer.example"}, "iss"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "exp"),
])
def test_an_id_token_the_provider_signed_for_something_else_is_refused(
        browser: Browser, provider: RunningProvider, claims: dict[str, object], named: str) -> None:
    callback = browser.authorize(browser.start(), person())
    provider.next_id_token(**claims)

    assert named in refusal(browser.callback(callback))


def test_a_verified_email_links_the_existing_account(browser: Browser, oidc_mesh: RunningMesh) -> None:
    who = person()
    with httpx.Client(verify=ssl.create_default_context(cafile=oidc_mesh.ca), timeout=15) as http:
        registered = http.post(f"{oidc_mesh.https}/api/users", json={"user": {
            "username": f"pw-{who.account}", "email": who.email, "password": "secret-pw-1"}})
    assert registered.status_code == 201, registered.text

    user = browser.sign_in(who).json()["user"]

    assert user["username"] == f"pw-{who.account}"
    assert current_user(oidc_mesh, user["token"])["username"] == f"pw-{who.account}"


def test_an_unverified_email_does_not_link(browser: Browser, other_browser: Browser, oidc_mesh: RunningMesh) -> None:
    who = person(verified=False)
    with httpx.Client(verify=ssl.create_default_context(cafile=oidc_mesh.ca), timeout=15) as http:
        registered = http.post(f"{oidc_mesh.https}/api/users", json={"user": {
            "username": f"pw-{who.account}", "email": who.email, "password": "secret-pw-1"}})
    assert registered.status_code == 201, registered.text

    assert "not verified" in refusal(browser.sign_in(who), 422)
    assert "not verified" in refusal(other_browser.sign_in(who), 422)  # and nothing was linked meanwhile


def test_a_provider_error_is_refused_clearly(browser: Browser) -> None:
    browser.start()
    callback = f"{browser.mesh.https}/api/auth/oidc/callback?error=access_denied&error_description=no"

    assert "access_denied" in refusal(browser.callback(callback))
