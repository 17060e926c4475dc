"""One small HTTP client for every live connector: requests + urllib3 `Retry`.

- timeouts (connect and read, `timeout_s`) on every request;
- retries with exponential backoff (`backoff_s` * 2**n, capped by `max_backoff_s`) on connection
  errors, read timeouts, 429 and 5xx, honouring a `Retry-After` header;
- a politeness delay: at least `min_interval_s` between two requests of one client;
- every failure (the last retry, a 4xx, a bad or truncated body) is a `SourceError` naming the
  source and the URL with its secrets redacted (query parameters that look like tokens or keys,
  and any value the connector declared secret; headers are never shown).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import requests
from pydantic import BaseModel, ConfigDict, Field
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from pipelines.sources.errors import SourceError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SECRET_PARAM = re.compile(r"(token|key|secret|password|passwd|auth|signature)", re.IGNORECASE)
REDACTED = "REDACTED"
USER_AGENT = "megawatt-pipeline (+https://github.com/; data connector)"


class HttpSettings(BaseModel):
    """Settings every live connector has (each overrides `base_url`'s default)."""

    model_config = ConfigDict(extra="forbid")
    base_url: str
    timeout_s: float = Field(30.0, gt=0, description="connect and read timeout, seconds")
    retries: int = Field(4, ge=0, le=10, description="retries after the first attempt")
    backoff_s: float = Field(1.0, ge=0, description="backoff factor: waits backoff_s * 2**n")
    max_backoff_s: float = Field(60.0, ge=0)
    min_interval_s: float = Field(0.2, ge=0, description="politeness delay between requests")


def redact_url(url: str, secrets: tuple[str, ...] = ()) -> str:
    """`url` with secret-looking query values (token=..., api_key=...) and `secrets` replaced."""
    parts = urlsplit(url)
    query = [
        (k, REDACTED if SECRET_PARAM.search(k) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    clean = urlunsplit(parts._replace(query=urlencode(query, safe=":,+{}\"'")))
    return redact_text(clean, secrets)


MIN_SECRET = 4  # characters


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with every spelling of every secret replaced (longest first)."""
    # a secret of a few characters would blank out the message's words, and protects nothing
    forms = {form for s in secrets if len(s) >= MIN_SECRET for form in spellings(s)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


def spellings(secret: str) -> set[str]:
    """The ways a secret shows in a URL, a form body, a header or a log: as typed,
    percent-encoded (in a path or a query, either case of hex digits) and base64 (standard and
    URL-safe, with or without padding)."""
    encoded = {quote(secret, safe=""), quote_plus(secret), quote(secret)}
    encoded |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), e) for e in encoded}
    raw = secret.encode()
    b64 = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return {secret} | encoded | b64 | {b.rstrip("=") for b in b64}


class HttpClient:
    """GET/POST with retries for one connector; `source` names it in every error."""

    def __init__(
        self,
        source: str,
        settings: HttpSettings,
        *,
        headers: dict[str, str] | None = None,
        secrets: tuple[str, ...] = (),
    ):
        self.source = source
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.secrets = tuple(s for s in secrets if s)
        retry = Retry(
            total=settings.retries,
            connect=settings.retries,
            read=settings.retries,
            status=settings.retries,
            other=0,
            allowed_methods=None,  # every method: our POSTs (token requests) are idempotent
            status_forcelist=RETRY_STATUSES,
            backoff_factor=settings.backoff_s,
            backoff_max=settings.max_backoff_s,
            respect_retry_after_header=True,
            raise_on_status=False,  # the last response comes back: we raise SourceError on it
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": USER_AGENT, **(headers or {})})
        self._last_request = 0.0
        self.requests_made = 0

    def url(self, path: str) -> str:
        if not path:
            return self.base_url
        return path if "://" in path else f"{self.base_url}/{path.lstrip('/')}"

    def shown(self, url: str) -> str:
        """The URL as it may appear in errors and `_source`: secrets redacted."""
        return redact_url(url, self.secrets)

    def error(self, url: str, what: str) -> SourceError:
        return SourceError(f"{self.source}: {self.shown(url)}: {redact_text(what, self.secrets)}")

    def _polite(self) -> None:
        wait = self._last_request + self.settings.min_interval_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_request = time.monotonic()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        data: dict | None = None,
        headers: dict[str, str] | None = None,
        ok_statuses: frozenset[int] = frozenset(),
    ) -> tuple[requests.Response, str]:
        """The response (2xx, or a status in `ok_statuses`) and its redacted URL."""
        url = self.url(path)
        prepared = requests.Request(method, url, params=params).prepare()
        full_url = prepared.url or url
        self._polite()
        self.requests_made += 1
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                timeout=self.settings.timeout_s,
            )
            body = response.content  # reads the whole body: a truncated one raises here
        except requests.exceptions.RetryError as e:
            raise self.error(
                full_url, f"gave up after {self.settings.retries} retries: {e}"
            ) from None
        except requests.exceptions.Timeout:
            raise self.error(
                full_url,
                f"timed out after {self.settings.timeout_s} s "
                f"(tried {self.settings.retries + 1} time(s))",
            ) from None
        except requests.exceptions.ChunkedEncodingError as e:
            raise self.error(full_url, f"truncated response body: {e}") from None
        except requests.exceptions.ConnectionError as e:
            # a read timeout on the last retry arrives as MaxRetryError(ReadTimeoutError)
            reason = getattr(e.args[0], "reason", e) if e.args else e
            if isinstance(reason, ReadTimeoutError | TimeoutError):
                what = f"timed out after {self.settings.timeout_s} s"
            else:
                what = f"connection failed ({type(reason).__name__})"
            raise self.error(
                full_url, f"{what} (tried {self.settings.retries + 1} time(s))"
            ) from None
        except requests.exceptions.RequestException as e:
            raise self.error(full_url, f"request failed: {type(e).__name__}: {e}") from None
        expected = response.headers.get("Content-Length")
        if expected and expected.isdigit() and int(expected) != len(body):
            if "gzip" not in response.headers.get("Content-Encoding", ""):
                raise self.error(
                    full_url, f"truncated response body: {len(body)} of {expected} bytes"
                )
        if response.ok or response.status_code in ok_statuses:
            return response, self.shown(full_url)
        retried = response.status_code in RETRY_STATUSES
        snippet = " ".join(response.text[:300].split())
        raise self.error(
            full_url,
            f"HTTP {response.status_code} {response.reason}"
            + (f" after {self.settings.retries} retries" if retried else "")
            + (f": {snippet}" if snippet else ""),
        )

    def get_text(self, path: str, params: dict | None = None, **kw) -> tuple[str, str, int]:
        """(body text, redacted URL, status)."""
        response, shown = self.request("GET", path, params=params, **kw)
        return response.text, shown, response.status_code

    def get_json(self, path: str, params: dict | None = None, **kw) -> tuple[Any, str]:
        """(decoded JSON, redacted URL); a body that is not JSON is a SourceError."""
        response, shown = self.request("GET", path, params=params, **kw)
        return self.decode_json(response, shown), shown

    def decode_json(self, response: requests.Response, shown: str) -> Any:
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError) as e:
            snippet = " ".join(response.text[:120].split())
            raise SourceError(
                f"{self.source}: {shown}: response is not valid JSON (truncated or an error page?)"
                f": {e}; body starts {snippet!r}"
            ) from None

    def pages(
        self,
        path: str,
        params: dict,
        *,
        total_pages: str = "totalPages",
        page_param: str = "page",
        meta: str = "_meta",
        max_pages: int = 1000,
        **kw,
    ) -> Iterator[tuple[Any, str]]:
        """Page-numbered JSON (page=1..totalPages, as ERCOT's API): yields (body, redacted URL)."""
        page = 1
        while True:
            body, shown = self.get_json(path, {**params, page_param: page}, **kw)
            yield body, shown
            try:
                last = int((body.get(meta) or {}).get(total_pages) or 1)
            except (AttributeError, TypeError, ValueError):
                raise SourceError(
                    f"{self.source}: {shown}: no {meta}.{total_pages} in the response"
                ) from None
            if page >= last:
                return
            if page >= max_pages:
                raise SourceError(f"{self.source}: {shown}: more than {max_pages} pages")
            page += 1
