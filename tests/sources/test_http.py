"""The shared HTTP client: retries, Retry-After, timeouts, bad bodies, redaction."""

from __future__ import annotations

import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipelines.sources.errors import SourceError
from pipelines.sources.http import HttpClient, HttpSettings, redact_url

from .conftest import FAST


def client(server: HTTPServer, **settings) -> HttpClient:
    return HttpClient(
        "test (table)", HttpSettings(base_url=server.url_for(""), **{**FAST, **settings})
    )


def test_500_then_give_up_names_source_and_url(httpserver: HTTPServer):
    httpserver.expect_request("/x").respond_with_data("upstream down", status=500)
    c = client(httpserver, retries=2)
    with pytest.raises(SourceError) as e:
        c.get_json("/x", {"day": "2024-04-20"})
    message = str(e.value)
    assert message.startswith("test (table): ")
    assert httpserver.url_for("/x?day=2024-04-20") in message
    assert "HTTP 500" in message and "after 2 retries" in message and "upstream down" in message
    assert len(httpserver.log) == 3  # the first try and 2 retries


def test_429_then_success_honours_retry_after(httpserver: HTTPServer):
    httpserver.expect_oneshot_request("/x").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "1"}
    )
    httpserver.expect_request("/x").respond_with_json({"ok": True})
    started = time.monotonic()
    body, _ = client(httpserver).get_json("/x")
    assert body == {"ok": True}
    assert time.monotonic() - started >= 0.9  # waited as told
    assert len(httpserver.log) == 2


def test_503_then_success(httpserver: HTTPServer):
    httpserver.expect_oneshot_request("/x").respond_with_data("", status=503)
    httpserver.expect_request("/x").respond_with_json([1, 2])
    assert client(httpserver).get_json("/x")[0] == [1, 2]


def test_404_is_not_retried(httpserver: HTTPServer):
    httpserver.expect_request("/x").respond_with_data("no such thing", status=404)
    with pytest.raises(SourceError, match="HTTP 404 NOT FOUND: no such thing"):
        client(httpserver).get_json("/x")
    assert len(httpserver.log) == 1


def test_timeout(httpserver: HTTPServer):
    def slow(_request: Request) -> Response:
        time.sleep(0.6)
        return Response("{}")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    with pytest.raises(SourceError, match=r"test \(table\): http://.*/slow: timed out after 0.2 s"):
        client(httpserver, timeout_s=0.2, retries=0).get_json("/slow")


def test_bad_json(httpserver: HTTPServer):
    httpserver.expect_request("/x").respond_with_data("<html>maintenance</html>")
    with pytest.raises(SourceError, match=r"/x: response is not valid JSON .*<html>maintenance"):
        client(httpserver).get_json("/x")


def test_truncated_json_body(httpserver: HTTPServer):
    httpserver.expect_request("/x").respond_with_data('[{"height": 840000, "timest')
    with pytest.raises(SourceError, match="not valid JSON"):
        client(httpserver).get_json("/x")


def test_body_shorter_than_content_length(httpserver: HTTPServer):
    def cut(_request: Request) -> Response:
        response = Response('{"a": 1}')
        response.headers["Content-Length"] = "100"  # the connection closes after 8 bytes
        return response

    httpserver.expect_request("/x").respond_with_handler(cut)
    with pytest.raises(SourceError, match=r"/x: (truncated response body|timed out)"):
        client(httpserver, timeout_s=1, retries=0).get_json("/x")


def test_politeness_delay(httpserver: HTTPServer):
    httpserver.expect_request("/x").respond_with_json({})
    c = client(httpserver, min_interval_s=0.3)
    started = time.monotonic()
    for _ in range(3):
        c.get_json("/x")
    assert time.monotonic() - started >= 0.6


def test_pages(httpserver: HTTPServer):
    for page in (1, 2, 3):
        httpserver.expect_request("/r", query_string=f"size=2&page={page}").respond_with_json(
            {"_meta": {"totalPages": 3, "currentPage": page}, "data": [[page]]}
        )
    bodies = [b["data"] for b, _ in client(httpserver).pages("/r", {"size": 2})]
    assert bodies == [[[1]], [[2]], [[3]]]


def test_secrets_redacted():
    url = "https://x.test/api?securityToken=abc123&documentType=A44&api_key=k&subscription-key=s"
    shown = redact_url(url)
    assert "abc123" not in shown and "=k" not in shown and "=s" not in shown
    assert "documentType=A44" in shown and "securityToken=REDACTED" in shown
    assert "zzzz" not in redact_url("https://x.test/zzzz/a", ("zzzz",))


def test_token_never_in_errors(httpserver: HTTPServer):
    httpserver.expect_request("/x").respond_with_data("bad token s3cr3t-t0ken", status=401)
    c = HttpClient(
        "test (table)",
        HttpSettings(base_url=httpserver.url_for(""), **FAST),
        headers={"Authorization": "Bearer s3cr3t-t0ken"},
        secrets=("s3cr3t-t0ken",),
    )
    with pytest.raises(SourceError) as e:
        c.get_json("/x", {"token": "s3cr3t-t0ken", "q": 1})
    assert "s3cr3t-t0ken" not in str(e.value) and "HTTP 401" in str(e.value)


def test_a_secret_is_redacted_in_every_spelling():
    """A token with + / = leaks percent-encoded or base64 unless those spellings are redacted."""
    import base64

    from pipelines.sources.http import REDACTED, redact_text

    token = "ab+c/d=e"
    spelled = [
        token,
        "ab%2Bc%2Fd%3De",  # a query value
        "ab%2bc%2fd%3de",  # lower-case hex
        "ab%2Bc/d%3De",  # a path
        base64.b64encode(token.encode()).decode(),
        base64.urlsafe_b64encode(token.encode()).decode(),
    ]
    text = " | ".join(spelled)
    assert redact_text(text, (token,)) == " | ".join([REDACTED] * len(spelled))
    assert redact_text("user=ops-bot", ("ops-bot",)) == f"user={REDACTED}"
