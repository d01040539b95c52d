"""Completions from an OpenAI-compatible server (vLLM, TGI's OpenAI route, llama.cpp's server).

A model spec `openai:<base URL>[#<model id>]`, e.g. `openai:http://127.0.0.1:8080/v1#smollm2`,
names the server; without `#<model id>` the first model the server lists is used. Requests go
to `<base URL>/completions` with `stream: true` (server-sent events) through the standard
library (proxy variables such as HTTPS_PROXY are not used). The API key, if the server wants
one, comes from the environment variable `CODET5_LSP_OPENAI_API_KEY`, never from settings, and
is sent only to a base URL the user allowed outside the editor: one listed in
`CODET5_LSP_OPENAI_BASE_URL` (comma-separated) or given with `--model` on the command line
(`allow_api_key_for`). A URL chosen by editor or workspace settings alone gets no key.
How far token healing goes over this API is described in `remote_model`.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

SPEC_PREFIX = "openai:"
API_KEY_ENV = "CODET5_LSP_OPENAI_API_KEY"
BASE_URL_ENV = "CODET5_LSP_OPENAI_BASE_URL"
DEFAULT_TIMEOUT_S = 30.0
_DEFAULT_PATH = "/v1"


class RemoteSpecError(ValueError):
    """A remote model spec that is not `openai:http(s)://host[:port][/path][#model]`."""


class RemoteModelError(RuntimeError):
    """The server could not be reached, failed, or answered something other than a completion.

    The message names the URL; `status` is the HTTP status when the server answered with an error.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RemoteSpec:
    """Where the server is and which of its models to use ('' = the first it lists)."""

    base_url: str  # scheme://host[:port]/path, no trailing slash
    model: str = ""

    @property
    def completions_url(self) -> str:
        return f"{self.base_url}/completions"

    @property
    def models_url(self) -> str:
        return f"{self.base_url}/models"


def is_remote_spec(spec: str) -> bool:
    """Whether a model spec names a remote server rather than a local model."""
    return spec.strip().lower().startswith(SPEC_PREFIX)


def parse_remote_spec(spec: str) -> RemoteSpec:
    """`openai:http(s)://host[:port][/path][#model]` -> RemoteSpec (path defaults to /v1)."""
    text = spec.strip()
    if not is_remote_spec(text):
        raise RemoteSpecError(f"a server spec starts with {SPEC_PREFIX!r}")
    url, _, model = text[len(SPEC_PREFIX):].partition("#")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RemoteSpecError("the server URL must start with http:// or https://")
    try:
        port = parts.port
    except ValueError:
        raise RemoteSpecError("the port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise RemoteSpecError("the server URL has no host")
    if parts.username is not None or parts.password is not None:
        raise RemoteSpecError(f"no credentials in the URL; put the API key in ${API_KEY_ENV}")
    if parts.query:
        raise RemoteSpecError("the server URL cannot have a query string")
    if any(c.isspace() for c in url + model):
        raise RemoteSpecError("the URL and the model id cannot contain spaces")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    path = parts.path.rstrip("/") or _DEFAULT_PATH
    return RemoteSpec(f"{parts.scheme}://{host}{'' if port is None else f':{port}'}{path}", model)


_allowed_base_urls: set[str] = set()  # given on the command line


def _base_url(spec_or_url: str) -> str | None:
    """The normalized base URL of `openai:<URL>[#model]` or of a bare URL; None if it is not one."""
    text = spec_or_url.strip()
    try:
        return parse_remote_spec(text if is_remote_spec(text) else SPEC_PREFIX + text).base_url
    except RemoteSpecError:
        return None


def allow_api_key_for(spec: str) -> None:
    """Let the API key go to the server `spec` names (a model given on the command line); other specs are ignored."""
    if is_remote_spec(spec) and (url := _base_url(spec)):
        _allowed_base_urls.add(url)


def api_key_allowed(spec: RemoteSpec) -> bool:
    """Whether the user allowed the API key to go to `spec`'s base URL (see the module's note)."""
    listed = {_base_url(item) for item in os.environ.get(BASE_URL_ENV, "").split(",") if item.strip()}
    return spec.base_url in listed | _allowed_base_urls


def _sse_data(response: http.client.HTTPResponse) -> Iterator[str]:
    """The data of each server-sent event, as the lines arrive."""
    data: list[str] = []
    while line := response.readline():
        text = line.decode("utf-8").rstrip("\r\n")
        if text.startswith("data:"):
            data.append(text[5:].removeprefix(" "))
        elif not text and data:  # a blank line ends an event
            yield "\n".join(data)
            data = []
    if data:
        yield "\n".join(data)


class OpenAICompletionEngine:
    """Streams greedy completions of a prompt from one model of an OpenAI-compatible server.

    Each request opens its own connection; closing a stream closes it, which servers take as
    cancellation. `timeout` bounds connecting and each wait for the next bytes.
    """

    def __init__(self, spec: RemoteSpec, *, timeout: float = DEFAULT_TIMEOUT_S, api_key: str | None = None) -> None:
        self.spec = spec
        self.timeout = timeout
        self._withheld = api_key is None and bool(os.environ.get(API_KEY_ENV)) and not api_key_allowed(spec)
        self._api_key = api_key if api_key is not None else "" if self._withheld else os.environ.get(API_KEY_ENV, "")

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _open(self, method: str, url: str, body: dict | None = None) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send one request; the connection and its response (status 200), or RemoteModelError."""
        parts = urlsplit(url)
        connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(parts.hostname or "", parts.port, timeout=self.timeout)
        try:
            payload = None if body is None else json.dumps(body).encode("utf-8")
            connection.request(method, parts.path, body=payload, headers=self._headers())
            response = connection.getresponse()
            if response.status != 200:
                detail = response.read(2000).decode("utf-8", "replace").strip()
                if self._withheld and response.status in (401, 403):
                    detail += (f" (${API_KEY_ENV} is sent only to a server the user allowed: list {self.spec.base_url} in "
                               f"${BASE_URL_ENV} or pass it with --model on the command line)")
                raise RemoteModelError(f"{method} {url} answered HTTP {response.status} {response.reason}: {detail}", response.status)
            return connection, response
        except RemoteModelError:
            connection.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise RemoteModelError(f"{method} {url} failed: {_describe(exc, self.timeout)}") from None

    def list_models(self) -> list[str]:
        """Ids of the models the server serves (GET /models)."""
        url = self.spec.models_url
        connection, response = self._open("GET", url)
        try:
            listing = json.loads(_read(response, url, self.timeout))
            return [str(entry["id"]) for entry in listing["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoteModelError(f"GET {url} did not return an OpenAI model list ({exc!r})") from None
        finally:
            connection.close()

    def resolve_model(self) -> str:
        """The model id to request: the spec's, which the server must list, or the first listed."""
        served = self.list_models()
        if self.spec.model and self.spec.model not in served:
            raise RemoteModelError(f"{self.spec.models_url} does not serve {self.spec.model!r}; it serves {served}")
        if not served:
            raise RemoteModelError(f"{self.spec.models_url} lists no models")
        return self.spec.model or served[0]

    def first_token_alternatives(self, model: str, prompt: str, count: int) -> list[str]:
        """Texts of the `count` most likely first tokens after `prompt`, most likely first.

        One non-streamed request for one token with `logprobs`; [] when the server answers it
        with an HTTP error or without log-probabilities (not every server computes them).
        """
        url = self.spec.completions_url
        body = {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0, "top_p": 1.0, "n": 1,
                "logprobs": count, "stream": False}
        try:
            connection, response = self._open("POST", url, body)
        except RemoteModelError as exc:
            if exc.status is None:
                raise
            return []
        try:
            answer = json.loads(_read(response, url, self.timeout))
            top = ((answer["choices"][0].get("logprobs") or {}).get("top_logprobs") or [None])[0] or {}
            return [text for text, _ in sorted(top.items(), key=lambda item: -float(item[1]))]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise RemoteModelError(f"POST {url} did not return an OpenAI completion ({exc!r})") from None
        finally:
            connection.close()

    def stream(self, model: str, prompt: str, max_new_tokens: int, stop: Sequence[str] = ()) -> Iterator[str]:
        """Text pieces of the greedy continuation of `prompt`, as the server sends them.

        Nothing is sent until the first piece is asked for; closing the iterator closes the
        connection. `stop` strings end generation on the server (which does not send them).
        """
        url = self.spec.completions_url
        body: dict = {"model": model, "prompt": prompt, "max_tokens": max_new_tokens, "temperature": 0.0,
                      "top_p": 1.0, "n": 1, "stream": True}
        if stop:
            body["stop"] = list(stop)
        connection, response = self._open("POST", url, body)
        try:
            for data in _sse_data(response):
                if data.strip() == "[DONE]":
                    return
                event = json.loads(data)
                if "error" in event:
                    raise RemoteModelError(f"POST {url} failed during generation: {event['error']}")
                for choice in event.get("choices") or ():
                    if choice.get("text"):
                        yield choice["text"]
        except (OSError, http.client.HTTPException) as exc:
            raise RemoteModelError(f"POST {url} failed during generation: {_describe(exc, self.timeout)}") from None
        except (ValueError, AttributeError, TypeError) as exc:
            raise RemoteModelError(f"POST {url} sent an event that is not an OpenAI completion chunk ({exc!r})") from None
        finally:
            connection.close()


def _read(response: http.client.HTTPResponse, url: str, timeout: float) -> bytes:
    try:
        return response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise RemoteModelError(f"reading {url} failed: {_describe(exc, timeout)}") from None


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    return f"{type(exc).__name__}: {exc}"
