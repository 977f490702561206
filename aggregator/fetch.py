"""Stage 1 for live inputs: fetching over HTTP (owns httpx; the only module that uses it).

`fetch_many` fetches many URLs concurrently and hands each `Fetched` result back as it is
done. What a person expects of a polite, safe feed fetcher is here, in one place:

- a global limit and a per-host limit on concurrent requests, optionally a minimum interval
  between the starts of two fetches from one host (a rate limit), an honest User-Agent;
- conditional GET with the stored ETag and Last-Modified (a 304 costs no parsing);
- an overall deadline per fetch: httpx's timeouts are per read, so a server dribbling a byte
  a second would otherwise hold a fetch forever;
- a cap on decoded bytes, enforced while decompressing, so a gzip bomb stops at the cap
  (httpx decodes a whole chunk before anyone can count it: we ask for gzip/deflate ourselves
  and decompress with a length limit);
- redirects followed here, at most `max_redirects`, so every hop is recorded (a permanent
  move can then update the stored URL) and checked;
- no connections to addresses that are not global (loopback, private, link-local, CGNAT,
  multicast, unspecified, and IPv4 hidden in IPv6), checked on the resolved address when the
  connection is made, so neither redirects nor DNS tricks get through.

Failures never raise: each is a `Fetched` with `status` 0 and a one-line `error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import socket
import zlib
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from aggregator import __version__

MiB = 1024 * 1024
PERMANENT = (301, 308)
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """How politely and how safely to fetch (the `fetch:` section of config.yaml)."""

    user_agent: str = f"aggregator/{__version__}"
    concurrency: int = 16
    """Requests in flight at once, over all hosts."""
    per_host: int = 2
    """Requests in flight at once to one host."""
    host_interval: float = 0.0
    """Seconds at least between the starts of two fetches from one host (0: no spacing). A
    host is a host name, whatever the port; redirect hops within one fetch are not spaced."""
    deadline: float = 30.0
    """Seconds one fetch may take from start to last byte, redirects included."""
    connect_timeout: float = 10.0
    max_bytes: int = 15 * MiB
    """Decoded bytes at most; a longer body is an error."""
    max_redirects: int = 5
    allow_private_networks: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    """One URL to fetch, with the validators from its last successful fetch."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    key: Any = None
    """The caller's handle for this request, handed back in the result."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one fetch gave: a body, a 304, an HTTP error status, or a failure."""

    request: Request
    status: int
    """The final HTTP status; 0 when no response was had (see `error`)."""
    url: str
    """The URL that answered, after redirects."""
    content: bytes = b""
    content_type: str | None = None
    charset: str | None = None
    """The charset named by the Content-Type header, if any."""
    etag: str | None = None
    last_modified: str | None = None
    retry_after: float | None = None
    """Seconds to wait, from a Retry-After header (429, 503)."""
    redirects: tuple[tuple[int, str], ...] = ()
    """Each redirect followed: (status, target URL)."""
    error: str | None = None
    """Why the fetch failed, in one line; None on any HTTP response."""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def moved_permanently_to(self) -> str | None:
        """The final URL when every redirect followed was permanent (301/308)."""
        if self.redirects and all(s in PERMANENT for s, _ in self.redirects):
            return self.redirects[-1][1]
        return None


class FetchError(Exception):
    """A fetch failed for a reason worth one line (raised and caught inside this module)."""


class BlockedAddress(FetchError):
    pass


def is_public(address: str) -> bool:
    """Whether an IP address is one the fetcher may connect to by default."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public(str(embedded)):
            return False
    return ip.is_global and not ip.is_multicast


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses non-global addresses, and connects to the address it
    checked (not the name again), so a DNS answer that changes in between cannot slip past."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend):
        self.inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host} ({exc.strerror})") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        blocked = [a for a in addresses if not is_public(a)]
        if blocked:
            raise BlockedAddress(
                f"{host} resolves to {blocked[0]}, which is not a public address "
                "(set fetch.allow_private_networks to allow it)"
            )
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"cannot connect to {host}")

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _transport(settings: FetchSettings) -> httpx.AsyncHTTPTransport:
    limits = httpx.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    # trust_env off: a proxy from the environment would be connected to instead of the feed's
    # host, and the address guard would check the proxy.
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    if not settings.allow_private_networks:
        # httpx has no public way to pass httpcore a network backend (encode/httpx#3749 is
        # open), so the pool is rebuilt with the same options and ours; a test proves the guard
        # holds, so an httpx release that changes this fails loudly rather than silently.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(httpcore.AnyIOBackend()),
        )
    return transport


def client(settings: FetchSettings) -> httpx.AsyncClient:
    """An httpx client configured for `fetch` (tests may build their own with a mock
    transport)."""
    return httpx.AsyncClient(
        transport=_transport(settings),
        headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
        timeout=httpx.Timeout(settings.deadline, connect=settings.connect_timeout),
        follow_redirects=False,
        trust_env=False,
    )


class _Limiter:
    """The global and per-host limits on requests in flight, and the per-host spacing."""

    def __init__(self, settings: FetchSettings):
        self.total = asyncio.Semaphore(settings.concurrency)
        self.per_host = settings.per_host
        self.hosts: dict[str, asyncio.Semaphore] = {}
        self.interval = settings.host_interval
        self.next_start: dict[str, float] = {}
        """host -> the loop time before which no other fetch from it may start."""

    def host(self, url: str) -> asyncio.Semaphore:
        host = (urlsplit(url).hostname or "").lower()
        sem = self.hosts.get(host)
        if sem is None:
            sem = self.hosts[host] = asyncio.Semaphore(self.per_host)
        return sem

    async def turn(self, url: str) -> None:
        """Wait until a fetch from this URL's host may start: `host_interval` after the start
        of the one before. The start is reserved before sleeping (nothing runs in between on
        the event loop), so fetches waiting together leave in line, one interval apart."""
        if self.interval <= 0:
            return
        host = (urlsplit(url).hostname or "").lower()
        now = asyncio.get_running_loop().time()
        start = max(now, self.next_start.get(host, now))
        self.next_start[host] = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


class _Decoder:
    """Content-Encoding undone with a limit on output, so a bomb stops at the cap."""

    def __init__(self, encoding: str, limit: int):
        encoding = encoding.strip().lower()
        self.limit = limit
        self.size = 0
        self.parts: list[bytes] = []
        if encoding in ("", "identity"):
            self.z: Any = None
        elif encoding in ("gzip", "x-gzip"):
            self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self.z = None
            self.deflate_pending = True
        else:
            raise FetchError(f"unsupported Content-Encoding {encoding!r}")
        self.encoding = encoding

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise FetchError(f"body larger than {self.limit // MiB} MiB")
        self.parts.append(data)

    def feed(self, chunk: bytes) -> None:
        if self.encoding == "deflate" and self.z is None:
            # "deflate" is zlib-wrapped by the standard and raw in practice: look at the header
            raw = len(chunk) >= 2 and (chunk[0] & 0x0F != 8 or (chunk[0] << 8 | chunk[1]) % 31)
            self.z = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        if self.z is None:
            self._add(chunk)
            return
        data = chunk
        try:
            while data:
                room = self.limit - self.size + 1
                self._add(self.z.decompress(data, room))
                data = self.z.unconsumed_tail
        except zlib.error as exc:
            raise FetchError(f"body is not valid {self.encoding} ({exc})") from None

    def finish(self) -> bytes:
        if self.z is not None:
            try:
                self._add(self.z.flush())
            except zlib.error as exc:
                raise FetchError(f"body is not valid {self.encoding} ({exc})") from None
        return b"".join(self.parts)


async def _drain(response: httpx.Response, limit: int = 256 * 1024) -> None:
    """Read and drop a body we do not use (a 304's, an error page's), so the connection goes
    back to the pool for the next request instead of being closed; a long one is cut off."""
    seen = 0
    async for chunk in response.aiter_raw():
        seen += len(chunk)
        if seen > limit:
            break


def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for part in content_type.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'").lower()
    return None


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _describe(exc: BaseException, settings: FetchSettings) -> str:
    if isinstance(exc, FetchError):
        return _one_line(exc)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no complete answer within {settings.deadline:g} s"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({_one_line(exc)})"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return f"not a URL that can be fetched ({_one_line(exc)})"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {_one_line(exc)}"
    if isinstance(exc, OSError):
        return _one_line(exc)
    raise exc


async def _fetch_once(
    http: httpx.AsyncClient, request: Request, settings: FetchSettings, limiter: _Limiter
) -> Fetched:
    url = request.url
    redirects: list[tuple[int, str]] = []
    headers: dict[str, str] = {}
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    while True:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchError(f"not an http(s) URL: {url}")
        # The first host's slot is held by `fetch`; a hop to another host takes that one's.
        other_host = urlsplit(url).hostname != urlsplit(request.url).hostname
        hop_limit = limiter.host(url) if other_host else contextlib.nullcontext()
        async with hop_limit, http.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status in REDIRECTS and "location" in response.headers:
                await _drain(response)
                target = urljoin(url, response.headers["location"])
                redirects.append((status, target))
                if len(redirects) > settings.max_redirects:
                    raise FetchError(f"more than {settings.max_redirects} redirects")
                if target in (u for _, u in redirects[:-1]) or target == request.url:
                    raise FetchError(f"redirect loop at {target}")
                url = target
                continue
            body = b""
            if status == 200:
                decoder = _Decoder(response.headers.get("content-encoding", ""), settings.max_bytes)
                async for chunk in response.aiter_raw():
                    decoder.feed(chunk)
                body = decoder.finish()
            else:
                await _drain(response)
            content_type = response.headers.get("content-type")
            return Fetched(
                request=request,
                status=status,
                url=url,
                content=body,
                content_type=content_type,
                charset=_charset(content_type),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                retry_after=retry_after(response.headers.get("retry-after"), datetime.now(UTC)),
                redirects=tuple(redirects),
            )


async def fetch(
    http: httpx.AsyncClient,
    request: Request,
    settings: FetchSettings,
    limiter: _Limiter | None = None,
) -> Fetched:
    """Fetch one URL within the deadline; never raises for a network or HTTP failure."""
    limiter = limiter or _Limiter(settings)
    try:
        # Waiting for a free slot or for the host's turn is not part of the deadline; the
        # fetch itself is. The turn is taken last, with both slots held, so the request starts
        # as soon as it comes (a global slot waited for after it could shorten the spacing).
        async with limiter.host(request.url), limiter.total:
            await limiter.turn(request.url)
            async with asyncio.timeout(settings.deadline):
                return await _fetch_once(http, request, settings, limiter)
    except (FetchError, TimeoutError, httpx.HTTPError, OSError) as exc:
        return Fetched(request=request, status=0, url=request.url, error=_describe(exc, settings))


async def fetch_many(
    requests: Sequence[Request],
    settings: FetchSettings,
    http: httpx.AsyncClient | None = None,
) -> AsyncIterator[Fetched]:
    """Fetch every request concurrently (within the limits); yield results as they finish."""
    own = http is None
    http = http or client(settings)
    limiter = _Limiter(settings)
    try:
        tasks = [asyncio.ensure_future(fetch(http, r, settings, limiter)) for r in requests]
        try:
            for done in asyncio.as_completed(tasks):
                yield await done
        finally:
            for task in tasks:
                task.cancel()
    finally:
        if own:
            await http.aclose()


T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on uvloop's event loop where it is installed (it is a dependency where it
    builds): each fetch costs less of the loop's own time (warm syncs 10-15% faster), and the
    daemon serves faster."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def fetch_all(requests: Sequence[Request], settings: FetchSettings) -> list[Fetched]:
    """`fetch_many` for synchronous callers: every result, in request order."""

    async def run() -> list[Fetched]:
        out = [r async for r in fetch_many(requests, settings)]
        order = {id(r): i for i, r in enumerate(requests)}
        return sorted(out, key=lambda f: order[id(f.request)])

    return run_async(run())


async def ping_hub(hub: str, topics: Sequence[str], settings: FetchSettings) -> list[str]:
    """Tell a WebSub hub that these feeds changed (`hub.mode=publish`, one POST per feed, as
    most hubs accept one `hub.url` per request); returns one line per failure."""
    problems: list[str] = []
    async with client(settings) as http:
        for topic in topics:
            try:
                async with asyncio.timeout(settings.deadline):
                    response = await http.post(hub, data={"hub.mode": "publish", "hub.url": topic})
                    await response.aread()
            except Exception as exc:  # one line per failure; _describe re-raises bugs
                problems.append(f"{hub}: {topic}: {_describe(exc, settings)}")
                continue
            if not 200 <= response.status_code < 300:
                problems.append(f"{hub}: {topic}: HTTP {response.status_code}")
    return problems
