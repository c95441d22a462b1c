"""The page script (/static/agegate-credential.js) and the integration guide's sample page in
real headless Chromium: the platform's page and backend and agegate on one origin, the wallet a
stubbed navigator.credentials.get that answers with a presentation built here."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, jsonify, request
from playwright.sync_api import expect
from werkzeug.serving import make_server

from agegate import create_app
from tests.conftest import auth, make_config
from tests.console_browser import browser  # noqa: F401
from tests.mdoc_helpers import Presentation

pytestmark = pytest.mark.browser

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "age-signals-integration.md"
SESSION = "sess-browser"


def sample_page() -> str:
    """The guide's sample page, verbatim."""
    text = GUIDE.read_text()
    return re.search(r"<!-- sample-page -->\n```html\n(.*?)```", text, re.S).group(1)


class Site:
    """One origin: the platform's page and backend routes, agegate everywhere else."""

    def __init__(self) -> None:
        self.agegate = None
        self.platform = Flask("platform")
        self.request_ids: list[str] = []
        self.requests: list[dict] = []
        self.origin = ""

        @self.platform.get("/signup")
        def page():
            return sample_page()

        @self.platform.post("/signup/credential-request")
        def start():
            # The platform's backend: its token stays here.
            answer = self.agegate.test_client().post(
                "/v1/credential-requests", headers=auth("registration"),
                json={"origin": self.origin, "session_id": SESSION}).get_json()
            self.request_ids.append(answer["request_id"])
            self.requests.append(answer["request"])
            return jsonify(protocol=answer["protocol"], request=answer["request"])

        @self.platform.post("/signup/credential-response")
        def relay():
            answer = self.agegate.test_client().post(
                f"/v1/credential-requests/{self.request_ids[-1]}/response",
                headers=auth("registration"), json=request.get_json())
            return jsonify(answer.get_json()), answer.status_code

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        app = self.platform if path.startswith("/signup") else self.agegate
        return app(environ, start_response)


@pytest.fixture
def site(redis_url, redis_client, tmp_path, clock, pki) -> Iterator[Site]:
    site = Site()
    server = make_server("127.0.0.1", 0, site, threaded=True)
    site.origin = f"http://127.0.0.1:{server.server_port}"
    site.agegate = create_app(make_config(
        redis_url, tmp_path, credential_origins=(site.origin,),
        credential_trust_anchors=pki.anchors_pem().decode(), load_model=False), clock=clock)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def tab(browser, site):  # noqa: F811
    context = browser.new_context(base_url=site.origin)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


NO_API = "delete window.DigitalCredential;"
# The wallet: records what the page asked for, and answers with what the test builds for the
# request's nonce and the page's origin (what a real wallet binds its signature to).
WALLET = """
window.DigitalCredential = window.DigitalCredential || function DigitalCredential() {};
navigator.credentials.get = async (options) => {
  window.walletWasAsked = JSON.parse(JSON.stringify(options));
  const asked = options.digital.requests[0];
  const presentation = await window.buildPresentation(asked.data.nonce, location.origin);
  if (presentation === "decline") throw new DOMException("declined", "NotAllowedError");
  return {protocol: asked.protocol, data: {vp_token: {age: [presentation]}}};
};
"""


def test_the_script_is_served_without_a_token(site):
    with site.agegate.test_client().get("/static/agegate-credential.js") as response:
        assert response.status_code == 200
        assert "navigator.credentials.get" in response.get_data(as_text=True)
        assert "javascript" in response.headers["Content-Type"]


def test_without_the_digital_credentials_api_the_page_shows_the_date_of_birth_form(tab):
    tab.add_init_script(NO_API)
    tab.goto("/signup")
    expect(tab.get_by_label("Date of birth")).to_be_visible()
    expect(tab.get_by_role("button", name="Use my digital ID wallet")).to_be_hidden()
    # present() itself falls back too, and never asks agegate for anything.
    result = tab.evaluate("""AgegateCredential.present({protocol: "openid4vp-v1-unsigned",
        request: {}, relay: () => { throw new Error("relayed"); }, fallback: "#dob-form"})""")
    assert result == {"outcome": "fallback", "reason": "unsupported"}


def test_a_wallet_answer_is_relayed_by_the_sample_page_and_is_over_18(tab, site, pki):
    built: list[tuple[str, str]] = []

    def build(nonce: str, origin: str) -> str:
        built.append((nonce, origin))
        return Presentation(pki, nonce, origin=origin).encoded()

    tab.expose_function("buildPresentation", build)
    tab.add_init_script(WALLET)
    tab.goto("/signup")
    expect(tab.get_by_label("Date of birth")).to_be_hidden()
    tab.get_by_role("button", name="Use my digital ID wallet").click()
    expect(tab.get_by_role("status")).to_have_text("Thank you. You can continue.")
    expect(tab.get_by_role("status")).to_have_attribute("data-result", "over_18")
    # Exactly the contract's call, with agegate's request untouched.
    asked = tab.evaluate("window.walletWasAsked")
    assert asked == {"digital": {"requests": [{"protocol": "openid4vp-v1-unsigned",
                                               "data": site.requests[-1]}]}}
    assert built == [(site.requests[-1]["nonce"], site.origin)]
    # The session's age check is now allow, whatever date it declares.
    check = site.agegate.test_client().post(
        "/v1/age-checks", headers=auth("registration"),
        json={"date_of_birth": "2012-01-01", "country": "US", "session_id": SESSION})
    assert check.get_json()["decision"] == "allow"


def test_a_browser_whose_api_does_not_carry_openid4vp_gets_the_form(tab):
    tab.add_init_script("window.DigitalCredential = {userAgentAllowsProtocol: () => false};")
    tab.goto("/signup")
    expect(tab.get_by_label("Date of birth")).to_be_visible()
    expect(tab.get_by_role("button", name="Use my digital ID wallet")).to_be_hidden()


def test_a_person_who_declines_gets_the_form(tab):
    tab.expose_function("buildPresentation", lambda nonce, origin: "decline")
    tab.add_init_script(WALLET)
    tab.goto("/signup")
    tab.get_by_role("button", name="Use my digital ID wallet").click()
    expect(tab.get_by_label("Date of birth")).to_be_visible()
    expect(tab.get_by_label("Date of birth")).to_be_focused()
    expect(tab.get_by_role("status")).to_have_text("")
