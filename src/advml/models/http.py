"""A model behind an HTTP(S) prediction API, as a black-box advml model.

:class:`HTTPClassifier` speaks advml's default JSON protocol (what ``advml serve-model``
serves) or a user's own, described by a :class:`TargetSpec` (a ``target.yaml``). It
does what a real, paid, rate-limited API demands:

* many inputs per request where the API allows, a bounded pool of concurrent requests,
  a rate limit in requests per second, a timeout per request;
* bounded retries with exponential backoff and jitter on 5xx answers and connection
  errors, and the server's ``Retry-After`` on ``429 Too Many Requests``;
* each distinct input counted against the query budget exactly once, whatever the
  retries; a cache of answers keyed by a hash of the input bytes, appended to a file
  after every request, so an interrupted or resumed audit never pays twice;
* every response checked (JSON, shape, NaN, probabilities that sum to 1, labels in
  range) with an error that names the response field;
* secrets only from environment variables (``Authorization: "Bearer ${API_TOKEN}"``),
  expanded when a request is sent and never kept in what the model describes, logs
  or caches.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor

from advml.errors import AdvmlError
from advml.models.base import BaseClassifier
from advml.models.http_transport import (
    DirectTransport,
    ProxyTransport,
    ResponseTooLargeError,
    TLSFiles,
    TransportError,
    open_transport,
)
from advml.validation import check_choice, check_number

__all__ = [
    "DEFAULT_BATCH",
    "HTTPClassifier",
    "RemoteModelError",
    "RemoteResponseError",
    "TargetSpec",
    "load_target",
    "open_target",
    "parse_rate",
]

log = logging.getLogger("advml.models.http")

# Inputs per request of the default protocol (the benchmark's 100 inputs per request).
DEFAULT_BATCH = 100
# The longest Retry-After waited for at once (a server asking for hours is retried sooner).
_MAX_RETRY_AFTER = 120.0
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# advml's protocol 2 (``X-Advml-Protocol: 2``): a batch as raw float32 bytes with its shape
# in ``X-Advml-Shape``, answered by the probabilities as raw float64 bytes.
RAW_INPUTS = "application/x-advml-float32"
RAW_SCORES = "application/x-advml-float64"
_PROBA_FLOOR = 1e-12
# The bytes any response may take beyond 64 per class and input (see _send_raw).
_MAX_RESPONSE = 64 << 20
# Inputs of at most this many bytes are their own key in the answer cache's memory.
_BYTES_AS_KEY = 4096
Returns = Literal["auto", "probs", "logits", "labels", "top-k"]
_KINDS = ("auto", "probs", "logits", "labels", "top-k")


class RemoteModelError(AdvmlError, RuntimeError):
    """The prediction API could not be reached or refused a request (after retries)."""


class RemoteResponseError(AdvmlError, ValueError):
    """The prediction API answered something that is not a valid answer.

    ``field`` names the response field (a JSON path) that is wrong.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def parse_rate(text: str | float | None) -> float | None:
    """Requests per second from ``50``, ``"50/s"``, ``"600/min"`` or ``None`` (no limit)."""
    if text is None:
        return None
    if isinstance(text, int | float) and not isinstance(text, bool):
        rate = float(text)
    else:
        m = re.fullmatch(
            r"\s*([0-9]*\.?[0-9]+)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*", str(text)
        )
        if m is None:
            raise ValueError(
                f"rate_limit must look like '50/s', '600/min' or a number of requests per "
                f"second, got {text!r}"
            )
        per = {"m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}
        rate = float(m.group(1)) / per.get(m.group(2) or "s", 1.0)
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"rate_limit must be a positive number of requests, got {text!r}")
    return rate


@dataclass(frozen=True)
class TargetSpec:
    """How to talk to a prediction API (the contents of a ``target.yaml``).

    Parameters
    ----------
    url : str
        Endpoint, ``http://`` or ``https://``. ``${VAR}`` is read from the environment.
    method : {"POST", "PUT", "GET"}
        HTTP method; default POST.
    headers : dict
        Extra headers; values may hold ``${VAR}`` (secrets: read from the environment
        when a request is sent, never stored or shown).
    body : object
        JSON request body template. The string ``"$inputs"`` is replaced by the list of
        encoded inputs of a batch, ``"$input"`` by one encoded input (then
        ``inputs_per_request`` must be 1). Default ``{"inputs": "$inputs"}``.
    inputs_per_request : int
        Most inputs in one request; 1 for an API that takes one input at a time.
    encoding : {"list", "png-base64", "float32-base64"}
        An input as nested lists of floats, as a base64 PNG (images of 1 or 3
        channels, values scaled from the bounds to 0..255), or the whole batch as
        ``{"float32": base64 bytes, "shape": [...]}`` (advml's servers; chosen by
        itself when the default protocol finds one, as JSON floats cost more to write
        and read than a small model costs to run).
    returns : {"auto", "probs", "logits", "labels", "top-k"}
        What the API answers. ``auto`` (the default protocol only) asks once and reads
        which of ``probabilities``, ``labels`` or ``top_k`` comes back.
    scores : str, optional
        JSON path of the scores in the response: ``probabilities``,
        ``predictions[*].scores`` (``[*]``: one per input), ``$`` for the whole body.
    labels : str, optional
        JSON path of the labels, for ``returns: labels``.
    top_k : str, optional
        JSON path of the top-k answers: per input ``{"labels": [...], "scores": [...]}``.
    timeout : float
        Seconds one request may take; default 30.
    retries : int
        Retries of a request after a 5xx, 429 or connection error; default 5.
    backoff : float
        Seconds of the first retry's wait, doubled on each retry (with jitter); default 0.5.
    rate_limit : float, optional
        Most requests per second; ``None``: no limit.
    concurrency : int
        Requests in flight at once; default 4.
    ca_bundle : str, optional
        CA certificates (a PEM file, or a folder of them) the API's HTTPS certificate is
        verified against; default ``$REQUESTS_CA_BUNDLE`` / ``$CURL_CA_BUNDLE``, else
        certifi's roots. Verification cannot be turned off.
    client_cert : str, optional
        A PEM file with the client certificate (and its key, unless ``client_key`` is
        given) for an API that asks for one (mutual TLS).
    client_key : str, optional
        The client certificate's private key (PEM), when not in ``client_cert``.
    client_key_password : str, optional
        Password of an encrypted ``client_key``: ``${VAR}`` (read from the environment
        like a header's secret).
    """

    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = field(default_factory=lambda: {"inputs": "$inputs"})
    inputs_per_request: int = DEFAULT_BATCH
    encoding: str = "list"
    returns: str = "auto"
    scores: str | None = None
    labels: str | None = None
    top_k: str | None = None
    timeout: float = 30.0
    retries: int = 5
    backoff: float = 0.5
    rate_limit: float | None = None
    concurrency: int = 4
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    client_key_password: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not re.match(r"https?://", self.url):
            raise ValueError(
                f"url must start with http:// or https://, got {self.url!r}; e.g. "
                f"--target-url http://127.0.0.1:8000/predict"
            )
        object.__setattr__(self, "method", str(self.method).upper())
        check_choice("method", self.method, ("POST", "PUT", "GET"))
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise ValueError(
                "headers must map header names to strings, e.g. "
                "{Authorization: 'Bearer ${API_TOKEN}'}"
            )
        object.__setattr__(self, "headers", dict(self.headers))
        check_number("inputs_per_request", self.inputs_per_request, low=1, integer=True)
        check_choice("encoding", self.encoding, ("list", "png-base64", "float32-base64"))
        check_choice("returns", self.returns, _KINDS)
        check_number("timeout", self.timeout, low=0, low_inclusive=False)
        check_number("retries", self.retries, low=0, integer=True)
        check_number("backoff", self.backoff, low=0)
        check_number("concurrency", self.concurrency, low=1, integer=True)
        object.__setattr__(self, "rate_limit", parse_rate(self.rate_limit))
        holes = list(_placeholders(self.body))
        if holes not in (["$inputs"], ["$input"]):
            raise ValueError(
                f"body must hold exactly one '$inputs' (a batch) or '$input' (one input), "
                f"found {holes or 'none'}"
            )
        if holes == ["$input"] and self.inputs_per_request != 1:
            object.__setattr__(self, "inputs_per_request", 1)
        custom = self.body != {"inputs": "$inputs"} or any(
            p is not None for p in (self.scores, self.labels, self.top_k)
        )
        if self.returns == "auto" and custom:
            raise ValueError(
                "returns: auto works with advml's default protocol only; for your own "
                "protocol say what the API returns (returns: probs | logits | labels | top-k) "
                "and where (scores: / labels: / top_k: a JSON path)"
            )
        for path in (self.scores, self.labels, self.top_k):
            if path is not None:
                _parse_path(path)
        self._check_tls()

    def _check_tls(self) -> None:
        files = {"ca_bundle": self.ca_bundle, "client_cert": self.client_cert,
                 "client_key": self.client_key}  # fmt: skip
        for name, value in [*files.items(), ("client_key_password", self.client_key_password)]:
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a path (a string), got {type(value).__name__}")
        given = [name for name, value in files.items() if value is not None]
        if self.client_key_password is not None:
            given.append("client_key_password")
        if given and not self.url.lower().startswith("https://"):
            raise ValueError(
                f"{', '.join(given)}: TLS settings, but the url is not https:// ({self.url!r})"
            )
        if (self.client_key or self.client_key_password) and not self.client_cert:
            raise ValueError("client_key and client_key_password need client_cert")
        if self.client_key_password is not None and not _VAR.fullmatch(self.client_key_password):
            raise ValueError(
                "client_key_password must name an environment variable, e.g. "
                "'${CLIENT_KEY_PASSWORD}': a password is never written in the file"
            )
        for name, value in files.items():
            if value is not None:
                path = Path(value).expanduser()
                if not path.exists():
                    raise FileNotFoundError(f"{name}: no file or folder {str(path)!r}")
                object.__setattr__(self, name, str(path))

    @functools.cached_property
    def one_per_request(self) -> bool:
        """The API takes a single input per request (``"$input"`` in the body)."""
        return list(_placeholders(self.body)) == ["$input"]

    def path_for(self, kind: str) -> str:
        """The JSON path the answers of ``kind`` are read from."""
        given = {
            "probs": self.scores,
            "logits": self.scores,
            "labels": self.labels,
            "top-k": self.top_k,
        }[kind]
        if given is not None:
            return given
        default = {
            "probs": "probabilities",
            "logits": "logits",
            "labels": "labels",
            "top-k": "top_k",
        }[kind]
        return ("$." + default) if self.one_per_request else default

    def secret_names(self) -> list[str]:
        """Environment variables the requests read (their values are secrets)."""
        names = _VAR.findall(self.url)
        for v in self.headers.values():
            names += _VAR.findall(v)
        names += _VAR.findall(self.client_key_password or "")
        return sorted(set(names))

    def public(self) -> dict[str, Any]:
        """What may be written to a report: templates, never expanded secrets."""
        return {
            "url": self.url,
            "method": self.method,
            "headers": sorted(self.headers),  # names only
            "inputs_per_request": self.inputs_per_request,
            "encoding": self.encoding,
            "returns": self.returns,
            "rate_limit": self.rate_limit,
            "concurrency": self.concurrency,
        }


def _placeholders(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        if obj in ("$inputs", "$input"):
            yield obj
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from _placeholders(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _placeholders(v)


def _fill(obj: Any, value: Any) -> Any:
    if isinstance(obj, str) and obj in ("$inputs", "$input"):
        return value
    if isinstance(obj, Mapping):
        return {k: _fill(v, value) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_fill(v, value) for v in obj]
    return obj


_TARGET_KEYS = {
    "url", "method", "headers", "body", "inputs_per_request", "encoding", "returns",
    "scores", "labels", "top_k", "timeout", "retries", "backoff", "rate_limit", "concurrency",
    "ca_bundle", "client_cert", "client_key", "client_key_password",
}  # fmt: skip
_TARGET_FILES = ("ca_bundle", "client_cert", "client_key")


def load_target(path: str | os.PathLike[str], *, url: str | None = None) -> TargetSpec:
    """Read a ``target.yaml``; ``url`` (``--target-url``) overrides the file's.

    Raises
    ------
    ValueError
        Naming the key that is wrong (unknown keys included).
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--target-config: no file {str(p)!r}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"--target-config {str(p)!r} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--target-config {str(p)!r} must be a mapping of settings (url: ...)")
    unknown = sorted(set(data) - _TARGET_KEYS)
    if unknown:
        raise ValueError(
            f"--target-config {str(p)!r}: unknown key(s) {unknown}; known: {sorted(_TARGET_KEYS)}"
        )
    if url is not None:
        data["url"] = url
    for key in _TARGET_FILES:  # relative to the file's folder
        if isinstance(data.get(key), str):
            data[key] = str(p.parent / Path(data[key]).expanduser())
    if "url" not in data:
        raise ValueError(f"--target-config {str(p)!r} has no url (or pass --target-url)")
    try:
        return TargetSpec(**data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"--target-config {str(p)!r}: {err}") from None


# -- JSON paths: name, name[3], name[*], $ ------------------------------------------------
_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*)|\[(\*|-?[0-9]+)\]")


def _parse_path(path: str) -> list[str | int]:
    text = path[1:] if path.startswith("$") else path
    text = text[1:] if text.startswith(".") else text
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        if text[pos] == ".":
            pos += 1
        m = _STEP.match(text, pos)
        if m is None:
            raise ValueError(
                f"JSON path {path!r} is not understood at {text[pos:]!r}; write e.g. "
                f"'predictions[*].scores' or 'output.probabilities'"
            )
        steps.append(m.group(1) if m.group(1) is not None else
                     ("*" if m.group(2) == "*" else int(m.group(2))))  # fmt: skip
        pos = m.end()
    return steps


def _select(doc: Any, path: str) -> Any:
    """The value at ``path`` in the parsed response (``[*]`` maps over a list)."""

    def walk(node: Any, steps: list[str | int], where: str) -> Any:
        if not steps:
            return node
        step, rest = steps[0], steps[1:]
        if step == "*":
            if not isinstance(node, list):
                raise RemoteResponseError(
                    f"response field {where!r} should be a list, got {type(node).__name__}",
                    field=where,
                )
            return [walk(v, rest, f"{where}[{i}]") for i, v in enumerate(node)]
        if isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                raise RemoteResponseError(
                    f"response field {where!r} has no item [{step}]", field=where
                )
            return walk(node[step], rest, f"{where}[{step}]")
        if not isinstance(node, dict) or step not in node:
            keys = sorted(node)[:8] if isinstance(node, dict) else type(node).__name__
            name = f"{where}.{step}" if where != "$" else step
            raise RemoteResponseError(
                f"response field {name!r} is missing (the response has {keys})", field=name
            )
        return walk(node[step], rest, f"{where}.{step}" if where != "$" else step)

    return walk(doc, _parse_path(path), "$")


# -- rate limiting -----------------------------------------------------------------------
class _RateLimiter:
    """Starts of requests at most ``rate`` per second, shared by the worker threads."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 0.0 if rate is None else 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if self.interval == 0.0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


# -- the answer cache --------------------------------------------------------------------
class _AnswerCache:
    """Answers by input, in memory and appended to ``folder/answers-ID.jsonl``.

    In memory an input is found by its bytes when they are few (at most
    ``_BYTES_AS_KEY``: tables, digits, MNIST), else by their hash (:func:`input_keys`):
    hashing 39 digits rows costs ~35 µs a request, as much as the rest of the client's
    work on their answers, while a dict finds short bytes at once. The file keys every
    answer by the hash, the same on every run.

    One line per answered input, written after each request, so an audit killed or
    stopped by a dead server keeps every answer it was sent; a torn last line (a crash
    while writing) is skipped on reading. Answers read from the file are found by their
    hash when an input is not in memory.
    """

    def __init__(self) -> None:
        self.answers: dict[bytes | str, Any] = {}
        self.stored: dict[str, Any] = {}  # from the file, by input_key
        self.file: Path | None = None
        self._lock = threading.Lock()

    def attach(self, folder: str | os.PathLike[str], identity: str) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.file = folder / f"answers-{identity}.jsonl"
        if self.file.exists():
            for line in self.file.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    if "f64" in entry:
                        raw = base64.b64decode(entry["f64"], validate=True)
                        self.stored[entry["k"]] = np.frombuffer(raw, dtype=np.float64)
                    else:
                        self.stored[entry["k"]] = int(entry["v"])
                except (ValueError, KeyError, TypeError):
                    continue

    def missing(self, rows: np.ndarray) -> tuple[list[bytes | str], dict[bytes | str, int]]:
        """The memory keys of ``rows`` (float32), and the first row of each key with no
        answer yet; answers found in the file are taken into memory."""
        keys = memory_keys(rows)
        answers = self.answers
        missing: dict[bytes | str, int] = {}
        for i, k in enumerate(keys):
            if k not in answers and k not in missing:
                missing[k] = i
        if missing and self.stored:
            found = input_keys(rows[list(missing.values())])
            for k, stable in zip(list(missing), found, strict=True):
                if stable in self.stored:
                    answers[k] = self.stored[stable]
                    del missing[k]
        return keys, missing

    def add(self, keys: Sequence[bytes | str], rows: np.ndarray, values: Sequence[Any]) -> None:
        """The answers ``values`` to ``rows`` (memory ``keys``), kept and written out."""
        with self._lock:
            for k, v in zip(keys, values, strict=True):
                self.answers[k] = v
            if self.file is not None and len(keys):
                stable = input_keys(rows)
                with self.file.open("a", encoding="utf-8") as f:
                    f.write("".join(_cache_line(k, v) for k, v in zip(stable, values, strict=True)))


def _cache_line(key: str, value: Any) -> str:
    # Scores as the bytes of their float64 row: exact, and cheaper than JSON floats.
    if isinstance(value, np.ndarray):
        data = base64.b64encode(np.ascontiguousarray(value, np.float64).tobytes()).decode()
        return f'{{"k": "{key}", "f64": "{data}"}}\n'
    return f'{{"k": "{key}", "v": {int(value)}}}\n'


def input_key(row: np.ndarray) -> str:
    """The cache key of one input: a hash of its float32 bytes and shape."""
    a = np.ascontiguousarray(row, dtype=np.float32)
    h = hashlib.blake2b(a.tobytes(), digest_size=16)
    h.update(str(a.shape).encode())
    return h.hexdigest()


def input_keys(rows: np.ndarray) -> list[str]:
    """``[input_key(row) for row in rows]`` (the same keys, so answers cached by an
    earlier run are found), with one conversion for the batch and each row hashed from
    a view of its bytes instead of a copy."""
    a = np.ascontiguousarray(rows, dtype=np.float32)
    if a.shape[0] == 0:
        return []
    suffix = str(a.shape[1:]).encode()
    data = a.reshape(-1).view(np.uint8).data  # the bytes, not a copy
    step = a[0].nbytes
    keys = []
    for i in range(a.shape[0]):
        h = hashlib.blake2b(data[i * step : (i + 1) * step], digest_size=16)
        h.update(suffix)
        keys.append(h.hexdigest())
    return keys


def memory_keys(rows: np.ndarray) -> list[bytes | str]:
    """In-memory cache keys of float32 ``rows``: each row's bytes when it has at most
    ``_BYTES_AS_KEY`` of them, else :func:`input_keys`."""
    a = np.ascontiguousarray(rows, dtype=np.float32)
    if a.shape[0] == 0:
        return []
    size = a[0].nbytes
    if size > _BYTES_AS_KEY or size == 0:
        return list(input_keys(a))
    as_bytes = a.reshape(a.shape[0], -1).view(np.dtype((np.void, size))).ravel()
    return cast("list[bytes | str]", as_bytes.tolist())  # a void scalar's item is bytes


class HTTPClassifier(BaseClassifier):
    """A model behind an HTTP(S) prediction API (black box: scores or labels).

    Parameters
    ----------
    target : str or TargetSpec
        The endpoint's URL (advml's default protocol: ``POST {"inputs": [...]}``,
        answered by ``{"probabilities": ...}``, ``{"labels": ...}`` or ``{"top_k": ...}``)
        or a :class:`TargetSpec` for another protocol (:func:`load_target` reads one
        from a ``target.yaml``).
    input_shape : tuple of int
        Shape of one input.
    n_classes : int
        Number of classes.
    bounds : (float, float)
        Valid input range.
    query_budget : int, optional
        Most distinct inputs to send; answers read from the cache are free.
    batch_size : int
        Inputs per call of ``predict``/``predict_proba`` (each call is split into
        requests of ``inputs_per_request``); default 1000.
    cache_dir : path, optional
        Folder of the answer cache file; ``None`` keeps answers in memory only.
        The audit puts it in its step cache (``OUT/steps/queries``).
    seed : int
        Seed of the retry jitter (the answers do not depend on it).

    Raises
    ------
    RemoteModelError
        When the server stays unreachable or keeps failing after ``retries``; the
        answers received before are in the cache.
    RemoteResponseError
        When a response is malformed; ``.field`` names the response field.

    Examples
    --------
    >>> model = HTTPClassifier("http://127.0.0.1:8000/predict", input_shape=(64,),
    ...                        n_classes=10, bounds=(0, 1))  # doctest: +SKIP
    >>> model.reveals  # doctest: +SKIP
    'probabilities'
    """

    has_gradients = False

    def __init__(
        self,
        target: str | TargetSpec,
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        bounds: tuple[float, float],
        query_budget: int | None = None,
        batch_size: int = 1000,
        cache_dir: str | os.PathLike[str] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            input_shape=input_shape,
            n_classes=n_classes,
            bounds=bounds,
            query_budget=query_budget,
            batch_size=batch_size,
        )
        self.spec = TargetSpec(url=target) if isinstance(target, str) else target
        if not isinstance(self.spec, TargetSpec):
            raise TypeError(f"target must be a URL or a TargetSpec, got {type(target).__name__}")
        if self.spec.encoding == "png-base64" and (
            len(self.input_shape) != 3 or self.input_shape[0] not in (1, 3)
        ):
            raise ValueError(
                f"encoding='png-base64' needs images of shape (1 or 3, H, W), got "
                f"input_shape={self.input_shape}; use encoding='list'"
            )
        for name in self.spec.secret_names():
            if name not in os.environ:
                raise ValueError(
                    f"the target's headers/url read ${{{name}}} from the environment, but "
                    f"{name} is not set; export {name}=... before running"
                )
        self._cache = _AnswerCache()
        self._jitter = random.Random(seed)
        self._limiter = _RateLimiter(self.spec.rate_limit)
        self._pool: DirectTransport | ProxyTransport | None = None
        self._pool_lock = threading.Lock()
        self.kind: str = self.spec.returns
        self.decimals: int | None = None  # rounding the API applies, once seen
        self.requests_sent = 0
        self.retries_done = 0
        self.cache_hits = 0
        self._full_precision = False
        self.binary = self.spec.encoding == "float32-base64"
        self._advml_server = False
        self._raw_ok = False  # the server takes raw float32 bodies (protocol 2)
        if cache_dir is not None:
            self.attach_cache(cache_dir)
        if self.kind == "auto":
            self._probe()

    # -- what the API reveals ---------------------------------------------------------
    @property
    def has_scores(self) -> bool:  # type: ignore[override]
        """The API gives scores (full, rounded or top-k), not only labels."""
        return self.kind != "labels"

    @property
    def reveals(self) -> str:
        """What the API reveals, in words: probabilities, rounded, top-k, labels only."""
        if self.kind == "labels":
            return "labels only"
        if self.kind == "top-k":
            return "top-k scores"
        words = "logits" if self.kind == "logits" else "probabilities"
        if self.decimals is not None:
            return f"{words} rounded to {self.decimals} decimals"
        return words

    def _probe(self) -> None:
        """One query at the middle of the bounds: which answer does the API give?"""
        low, high = self.bounds
        x = np.full((1, *self.input_shape), (low + high) / 2, dtype=np.float32)
        self._count(1)
        doc = self._send_raw(self._encode_batch(x), 1)
        if not isinstance(doc, dict):
            raise RemoteResponseError(
                "the response is not a JSON object; advml's protocol answers "
                "{'probabilities': ...}, {'labels': ...} or {'top_k': ...}",
                field="$",
            )
        for key, kind in (("probabilities", "probs"), ("top_k", "top-k"), ("labels", "labels"),
                          ("logits", "logits")):  # fmt: skip
            if key in doc:
                self.kind = kind
                break
        else:
            raise RemoteResponseError(
                f"the response has none of the fields probabilities, top_k, labels, logits "
                f"(it has {sorted(doc)[:8]}); describe the API in a target.yaml",
                field="$",
            )
        value = self._parse(doc, 1)[0]
        self._cache.add(memory_keys(x), x, [value])
        if self._advml_server and self.spec.encoding == "list" and not self.spec.one_per_request:
            self.binary = True  # an advml server: the same numbers, without JSON floats

    # -- identity and reports -----------------------------------------------------------
    def describe(self) -> str:
        """One line for reports: the endpoint (no secrets) and what it reveals."""
        return f"HTTP API {self.spec.method} {self.spec.url}, black-box ({self.reveals})"

    def _identity(self) -> list[object]:
        return [*super()._identity(), self.spec.url, self.spec.method, self.kind]

    def attach_cache(self, folder: str | os.PathLike[str]) -> None:
        """Keep the answers in ``folder`` (read back what an earlier run was sent)."""
        ident = hashlib.sha256(
            json.dumps([self.spec.url, list(self.input_shape), self.n_classes]).encode()
        ).hexdigest()[:16]
        self._cache.attach(folder, ident)

    # -- queries: misses only are sent and counted ---------------------------------------
    def logits(self, x: Tensor) -> Tensor:
        if not self.has_scores:
            return super().logits(x)  # raises: labels only
        return self._logits(x)

    def predict_labels(self, x: Tensor) -> Tensor:
        return self._labels(x)

    # Unlike the local adapters' hooks, these count what they send: any input that
    # reaches the API is a paid query, whoever asks (e.g. the audit's output check).
    def _logits(self, x: Tensor) -> Tensor:
        rows = self._answers(x)
        out = np.asarray(rows, dtype=np.float64).reshape(x.shape[0], self.n_classes)
        if self.kind != "logits":
            out = np.log(np.maximum(out, _PROBA_FLOOR))
        return torch.as_tensor(out, dtype=torch.float32, device=self.device)

    def _labels(self, x: Tensor) -> Tensor:
        rows = self._answers(x)
        if self.kind == "labels":
            labels = np.asarray(rows, dtype=np.int64).reshape(x.shape[0])
        else:
            labels = np.asarray(rows, dtype=np.float64).reshape(x.shape[0], -1).argmax(1)
        return torch.as_tensor(labels, device=self.device)

    def _batched(self, x: Tensor, fn: Any, batch_size: int | None) -> Tensor:
        # The budget check of the base counts every row; here cached rows are free.
        size = self.batch_size if batch_size is None else int(batch_size)
        check_number("batch_size", size, low=1, integer=True)
        if self.query_budget is not None or self._inner_queries_left() is not None:
            # Looking every row up costs a pass over the batch: only with a budget.
            rows = x.detach().cpu().numpy().astype(np.float32, copy=False)
            self._check_budget(len(self._cache.missing(rows)[1]))
        with torch.no_grad():
            if x.shape[0] <= size:
                return fn(x)
            return torch.cat([fn(x[s : s + size]) for s in range(0, x.shape[0], size)])

    def _answers(self, x: Tensor) -> list[Any]:
        arr = x.detach().cpu().numpy().astype(np.float32, copy=False)
        keys, missing = self._cache.missing(arr)
        self.cache_hits += len(keys) - len(missing)
        if missing:
            self._transport()  # a setting it refuses (a TLS file) refuses before counting
            # Counted once here, before sending: a retried request is not paid again.
            self._count(len(missing))
            self._fetch(list(missing), arr[list(missing.values())])
        answers = self._cache.answers
        return [answers[k] for k in keys]

    def _fetch(self, keys: list[bytes | str], rows: np.ndarray) -> None:
        step = self.spec.inputs_per_request
        chunks = [(keys[s : s + step], rows[s : s + step]) for s in range(0, len(keys), step)]

        def one(chunk: tuple[list[bytes | str], np.ndarray]) -> None:
            ks, xs = chunk
            doc = self._send_raw(self._encode_batch(xs), len(ks))
            self._cache.add(ks, xs, self._parse(doc, len(ks)))

        if len(chunks) == 1 or self.spec.concurrency == 1:
            for c in chunks:
                one(c)
            return
        with ThreadPoolExecutor(max_workers=min(self.spec.concurrency, len(chunks))) as pool:
            # Every chunk finishes (its answers cached) before the first error is raised.
            futures = [pool.submit(one, c) for c in chunks]
            errors = [f.exception() for f in futures]
        for err in errors:
            if err is not None:
                raise err

    # -- encoding ----------------------------------------------------------------------
    def _encode_batch(self, xs: np.ndarray) -> Any:
        if self.binary and self._raw_ok:
            return _RawBatch(np.ascontiguousarray(xs, dtype=np.float32))
        if self.binary:
            xs = np.ascontiguousarray(xs, dtype=np.float32)
            batch = {"float32": base64.b64encode(xs.tobytes()).decode(), "shape": list(xs.shape)}
            return _fill(self.spec.body, batch)
        encoded: Any
        if self.spec.encoding == "list":
            # The float32 values as float64: JSON gets their exact decimal, as json.dumps
            # of .tolist() wrote them; orjson writes the array without the lists.
            encoded = np.ascontiguousarray(xs, dtype=np.float32).astype(np.float64)
        else:
            encoded = [encode_png(row, self.bounds) for row in xs]
        return _fill(self.spec.body, encoded[0] if self.spec.one_per_request else encoded)

    # -- sending -----------------------------------------------------------------------
    def _transport(self) -> DirectTransport | ProxyTransport:
        transport = self._pool
        if transport is None:
            with self._pool_lock:
                transport = self._pool
                if transport is None:
                    url = self._expand(self.spec.url)
                    transport = open_transport(url, self.spec.concurrency, self._tls())
                    self._pool = transport
        return transport

    def _tls(self) -> TLSFiles:
        password = self.spec.client_key_password
        return TLSFiles(
            ca_bundle=self.spec.ca_bundle,
            client_cert=self.spec.client_cert,
            client_key=self.spec.client_key,
            password=None if password is None else self._expand(password),
        )

    def _expand(self, text: str) -> str:
        return _VAR.sub(lambda m: os.environ.get(m.group(1), ""), text)

    def _redact(self, text: str) -> str:
        for name in self.spec.secret_names():
            value = os.environ.get(name)
            if value:
                text = text.replace(value, "***")
        return text

    def _send_raw(self, body: Any, n: int) -> Any:
        """One request for ``n`` inputs, with retries; the parsed JSON body."""
        headers = {k: self._expand(v) for k, v in self.spec.headers.items()}
        if isinstance(body, _RawBatch):
            payload = body.data.tobytes()
            headers["Content-Type"] = RAW_INPUTS
            headers["X-Advml-Shape"] = ",".join(str(d) for d in body.data.shape)
        else:
            payload = dumps_json(body)
            headers.setdefault("Content-Type", "application/json")
        transport = self._transport()
        # The most bytes the answers to n inputs can take, with room for what an API
        # adds; a larger response is refused before it is read into memory.
        max_bytes = _MAX_RESPONSE + n * self.n_classes * 64
        last = ""
        for attempt in range(self.spec.retries + 1):
            self._limiter.wait()
            wait: float | None = None
            try:
                self.requests_sent += 1
                r = transport.send(self.spec.method, payload, headers, self.spec.timeout, max_bytes)
            except ResponseTooLargeError as err:
                raise RemoteResponseError(self._redact(str(err)), field="$") from None
            except TransportError as err:
                last = self._redact(str(err))[:200]
            else:
                if r.status == 200:
                    version = r.headers.get("x-advml-protocol")
                    if version:
                        self._advml_server = True
                        # Raw bodies with the default body template only: a user's own
                        # template says where the inputs go in a JSON document.
                        self._raw_ok = (
                            version.isdigit()
                            and int(version) >= 2
                            and self.spec.body == {"inputs": "$inputs"}
                        )
                    return self._json(r)
                excerpt = self._redact(_text(r.data[:200])).strip()
                last = f"HTTP {r.status}: {excerpt}"
                if r.status == 429:
                    wait = _retry_after(r.headers.get("retry-after"))
                elif r.status not in _RETRY_STATUS:
                    moved = r.headers.get("location")
                    hint = (
                        f"the API answers from {self._redact(moved)!r}: use that URL"
                        if moved and 300 <= r.status < 400
                        else "check the URL, headers and body of the target"
                    )
                    raise RemoteModelError(
                        f"the API at {self.spec.url} refused the request with HTTP "
                        f"{r.status} ({excerpt[:120]!r}); {hint}"
                    )
            if attempt == self.spec.retries:
                break
            if wait is None:
                # Exponential backoff with full jitter (AWS architecture blog, 2015).
                wait = self.spec.backoff * (2**attempt) * (0.5 + self._jitter.random())
            self.retries_done += 1
            log.info("retrying %s in %.2fs after %s", self.spec.url, wait, last)
            time.sleep(min(wait, _MAX_RETRY_AFTER))
        raise RemoteModelError(
            f"the API at {self.spec.url} failed {self.spec.retries + 1} times (last: {last}); "
            f"the answers received so far are cached: run again to resume without paying "
            f"for them twice"
        )

    def _json(self, r: Any) -> Any:
        ctype = r.headers.get("content-type", "")
        if ctype.startswith(RAW_SCORES):
            shape = r.headers.get("x-advml-shape", "")
            try:
                dims = [int(d) for d in shape.split(",")]
                arr = np.frombuffer(r.data, dtype=np.float64).reshape(dims)
            except ValueError:
                raise RemoteResponseError(
                    f"the {RAW_SCORES} response ({len(r.data)} bytes) does not match its "
                    f"X-Advml-Shape header {shape[:40]!r}",
                    field="X-Advml-Shape",
                ) from None
            return {"probabilities": arr}
        try:
            return loads_json(r.data)
        except ValueError:
            start = self._redact(_text(r.data[:60])).strip()
            raise RemoteResponseError(
                f"the response body is not JSON (Content-Type {ctype or 'none'}, starts with "
                f"{start!r}); is the URL the prediction endpoint?",
                field="$",
            ) from None

    # -- reading answers ---------------------------------------------------------------
    def _parse(self, doc: Any, n: int) -> list[Any]:
        """Per-input answers from a response for ``n`` inputs, checked."""
        kind = self.kind
        path = self.spec.path_for(kind)
        value = _select(doc, path)
        if isinstance(value, dict) and kind in ("probs", "logits"):
            value = _decode_array(value, path)
        elif self.spec.one_per_request:
            value = [value]
        if not isinstance(value, list | np.ndarray) or len(value) != n:
            got = len(value) if isinstance(value, list | np.ndarray) else type(value).__name__
            raise RemoteResponseError(
                f"response field {path!r} should hold {n} answers (one per input), got {got}",
                field=path,
            )
        if kind == "labels":
            return self._check_labels(list(value), path)
        if kind == "top-k":
            return self._top_k(list(value), path)
        return self._check_scores(value, path)

    def _check_labels(self, value: list[Any], path: str) -> list[int]:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise RemoteResponseError(
                f"response field {path!r} should hold class indices, got {str(value)[:60]}",
                field=path,
            ) from None
        if arr.ndim != 1 or not np.isfinite(arr).all() or np.any(np.mod(arr, 1) != 0):
            raise RemoteResponseError(
                f"response field {path!r} should hold one integer class index per input",
                field=path,
            )
        if arr.min() < 0 or arr.max() >= self.n_classes:
            raise RemoteResponseError(
                f"response field {path!r} holds labels in [{int(arr.min())}, {int(arr.max())}],"
                f" outside [0, {self.n_classes}) for {self.n_classes} classes",
                field=path,
            )
        return [int(v) for v in arr]

    def _check_scores(self, value: list[Any] | np.ndarray, path: str) -> list[np.ndarray]:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise RemoteResponseError(
                f"response field {path!r} should hold numbers, got {str(value)[:60]}",
                field=path,
            ) from None
        if arr.shape != (len(value), self.n_classes):
            raise RemoteResponseError(
                f"response field {path!r} has shape {arr.shape}; expected "
                f"({len(value)}, {self.n_classes}): one score per class for each input",
                field=path,
            )
        # NaN and infinities carry into the sums: one pass finds them (then the rows).
        sums = arr.sum(axis=1)
        bad = 0 if math.isfinite(sums.sum()) else int((~np.isfinite(arr)).any(axis=1).sum())
        if bad:  # (a finite sum can overflow: then no row is at fault)
            raise RemoteResponseError(
                f"response field {path!r} holds NaN or infinite scores for {bad} of "
                f"{len(value)} inputs",
                field=path,
            )
        if self.kind == "probs":
            self._note_rounding(arr)
            # Rounding to d decimals moves each entry by up to half a unit of the last place.
            tol = 1e-4 if self.decimals is None else 0.5 * 10.0**-self.decimals * self.n_classes
            low, high = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
            off = float(np.abs(sums - 1).max()) if sums.size else 0.0
            if low < -1e-6 or high > 1 + 1e-6 or off > tol + 1e-9:
                raise RemoteResponseError(
                    f"response field {path!r} should hold probabilities (in [0, 1], each row "
                    f"summing to 1), got values in [{low:.4g}, {high:.4g}] and row "
                    f"sums in [{sums.min():.4g}, {sums.max():.4g}]; if the API returns raw "
                    f"scores set returns: logits",
                    field=path,
                )
            if low < 0:
                arr = np.clip(arr, 0, None)
                sums = arr.sum(axis=1)
            arr = arr / sums[:, None]
        return list(arr)

    def _note_rounding(self, arr: np.ndarray) -> None:
        # The fewest decimals that reproduce every answer; once an answer needs more than
        # 6, the API is taken to return full-precision scores (and is not asked again).
        if self._full_precision:
            return
        found = next((d for d in range(1, 7) if np.all(np.abs(arr - np.round(arr, d)) < 1e-9)),
                     None)  # fmt: skip
        if found is None:
            self._full_precision = True
            self.decimals = None
        elif not self._full_precision:
            self.decimals = max(self.decimals or 0, found)

    def _top_k(self, value: list[Any], path: str) -> list[np.ndarray]:
        """Top-k answers as a probability row: the rest of the mass spread evenly over the
        classes not named, which keeps the API's argmax and order."""
        out = []
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            if not isinstance(item, dict) or "labels" not in item or "scores" not in item:
                raise RemoteResponseError(
                    f"response field {where!r} should be {{'labels': [...], 'scores': [...]}}",
                    field=where,
                )
            labels = self._check_labels(list(item["labels"]), f"{where}.labels")
            try:
                scores = np.asarray(item["scores"], dtype=np.float64)
            except (TypeError, ValueError):
                raise RemoteResponseError(
                    f"response field {where + '.scores'!r} should hold numbers",
                    field=f"{where}.scores",
                ) from None
            if scores.shape != (len(labels),) or not np.isfinite(scores).all():
                raise RemoteResponseError(
                    f"response field {where + '.scores'!r} should hold {len(labels)} finite "
                    f"scores (one per label)",
                    field=f"{where}.scores",
                )
            if scores.min() < 0 or scores.sum() > 1 + 1e-3 * len(labels):
                raise RemoteResponseError(
                    f"response field {where + '.scores'!r} should hold probabilities summing to "
                    f"at most 1, got a sum of {scores.sum():.4g}",
                    field=f"{where}.scores",
                )
            row = np.zeros(self.n_classes)
            rest = self.n_classes - len(set(labels))
            fill = max(0.0, 1.0 - float(scores.sum())) / rest if rest else 0.0
            # Never above the smallest named score: the unnamed classes ranked below it.
            fill = min(fill, float(scores.min()) * 0.999) if len(scores) else fill
            row[:] = fill
            row[labels] = scores
            out.append(row / row.sum())
        return out


def _decode_array(value: dict[str, Any], path: str) -> np.ndarray:
    """``{"float64" | "float32": base64 bytes, "shape": [...]}`` as an array."""
    dtype = "float64" if "float64" in value else "float32" if "float32" in value else None
    shape = value.get("shape")
    if dtype is None or not isinstance(shape, list):
        raise RemoteResponseError(
            f"response field {path!r} should be a list, or {{'float64': base64, 'shape': "
            f"[...]}}; got the keys {sorted(value)[:8]}",
            field=path,
        )
    try:
        raw = base64.b64decode(value[dtype], validate=True)
        return np.frombuffer(raw, dtype=dtype).reshape([int(d) for d in shape]).astype(np.float64)
    except (ValueError, TypeError):
        raise RemoteResponseError(
            f"response field {path!r}: its {dtype} bytes do not make an array of shape {shape}",
            field=path,
        ) from None


@dataclass(frozen=True)
class _RawBatch:
    """A batch sent as raw float32 bytes (protocol 2)."""

    data: np.ndarray


def dumps_json(doc: Any) -> bytes:
    """``doc`` as JSON bytes, numpy arrays as nested lists.

    orjson (its C writer and ryu's shortest round-trip floats) rather than ``json``: a
    batch of 35 digits inputs took 1.65 ms with ``json.dumps(batch.tolist())`` and 0.12 ms
    here, the same numbers; keys that are not strings are written as strings, as
    ``json`` does.
    """
    import orjson

    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def loads_json(data: bytes | str) -> Any:
    """Parsed JSON; ``ValueError`` if it is not JSON.

    orjson (~11x faster on a batch of numbers), falling back to ``json`` for what orjson
    refuses and ``json`` reads: ``NaN``/``Infinity`` literals (which the checks then
    name) and integers beyond 64 bits.
    """
    import orjson

    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _retry_after(header: str | None) -> float:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if header is None:
        return 1.0
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return 1.0
    return max(0.0, when.timestamp() - time.time())


def encode_png(row: np.ndarray, bounds: tuple[float, float]) -> str:
    """One image ``(C, H, W)`` (C = 1 or 3) as a base64 PNG, values mapped to 0..255."""
    from PIL import Image

    low, high = bounds
    a = (np.asarray(row, dtype=np.float64) - low) / (high - low)
    a = np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)
    img = Image.fromarray(a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_png(text: str, shape: tuple[int, ...], bounds: tuple[float, float]) -> np.ndarray:
    """The inverse of :func:`encode_png` (used by ``advml serve-model``)."""
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(base64.b64decode(text, validate=True)))
        a = np.asarray(img, dtype=np.float64)
    except (ValueError, OSError) as err:
        raise ValueError(f"an input is not a base64 PNG: {err}") from None
    a = a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)
    if a.shape != tuple(shape):
        raise ValueError(f"a PNG input has shape {a.shape}, the model expects {tuple(shape)}")
    low, high = bounds
    return (low + a / 255.0 * (high - low)).astype(np.float32)


def open_target(
    url: str | None,
    config: str | os.PathLike[str] | None,
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    bounds: tuple[float, float],
    query_budget: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> HTTPClassifier:
    """The :class:`HTTPClassifier` of ``--target-url`` and/or ``--target-config``."""
    if url is None and config is None:
        raise ValueError("give --target-url URL or --target-config target.yaml")
    spec = load_target(config, url=url) if config is not None else TargetSpec(url=str(url))
    return HTTPClassifier(
        spec,
        input_shape=input_shape,
        n_classes=n_classes,
        bounds=bounds,
        query_budget=query_budget,
        cache_dir=cache_dir,
        seed=seed,
    )
