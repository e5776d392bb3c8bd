"""A lean HTTP/1.1 client for the router's fan-out: one pool of persistent TLS
connections per node, requests written in one call, answers parsed by httptools.

Why not httpx: a router search is 28 POSTs of the same 60-80 KB body, and httpx spent
about 2 ms of CPU on each (request objects, anyio's TLS stream, a scan of the pool
with a socket probe per pooled connection before and after each request); this
client spends about a tenth of that (``bench/fanout_clients.py`` measures both,
and aiohttp, in the same run). It does only what the fan-out needs: POST with a body
of known length, an answer with Content-Length or chunked framing, keep-alive, a
size limit, and no redirects, cookies, proxies or retries of a request that may have
reached the node. Deadlines are the caller's: cancel the task and the connection is
closed (an answer half read can never be handed to the next request).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import httptools


class HttpFailure(Exception):
    """The exchange with the node failed; the subclass says how."""


class ConnectFailed(HttpFailure):
    """No connection: refused, unreachable, or the TLS handshake failed."""

    def __init__(self, message: str, tls_reason: str | None = None) -> None:
        super().__init__(message)
        self.tls_reason = tls_reason


class Broken(HttpFailure):
    """The connection broke, or the answer was not HTTP, before it was complete."""

    def __init__(self, message: str, *, silent: bool = False) -> None:
        super().__init__(message)
        self.silent = silent  # not a byte of the answer had arrived


class TooLarge(HttpFailure):
    """The answer is larger than the caller's limit."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


@dataclass
class _Exchange:
    limit: int
    done: asyncio.Future[Answer]
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    status: int = 0
    keep_alive: bool = False
    received: bool = False


class _Connection(asyncio.Protocol):
    """One TLS connection; one exchange at a time (no pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        self.exchange.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(Broken(f"the answer is not HTTP/1.1 ({exc})"))
        except TooLarge as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        silent = self.exchange is not None and not self.exchange.received
        self._fail(Broken("the connection closed before the answer was complete", silent=silent))

    # httptools callbacks
    def on_headers_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        exchange.status = self._parser.get_status_code()
        exchange.keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        exchange.size += len(body)
        if exchange.size > exchange.limit:
            raise TooLarge(f"the answer is larger than {exchange.limit} bytes")
        exchange.chunks.append(body)

    def on_message_complete(self) -> None:
        exchange, self.exchange = self.exchange, None
        assert exchange is not None
        if not exchange.keep_alive:
            self.close()
        if not exchange.done.done():
            exchange.done.set_result(Answer(exchange.status, b"".join(exchange.chunks)))

    # the client side
    def start(self, request: bytes, limit: int) -> asyncio.Future[Answer]:
        assert self.transport is not None and self.exchange is None
        done: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.exchange = _Exchange(limit, done)
        self.transport.write(request)
        return done

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: HttpFailure) -> None:
        exchange, self.exchange = self.exchange, None
        if exchange is not None and not exchange.done.done():
            exchange.done.set_exception(exc)
        self.close()


class Pool:
    """Persistent connections to one node (``https://host:port``), for POSTs."""

    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        *,
        server_hostname: str | None = None,
        max_idle: int = 64,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host, self.port = host, port
        self.ssl = ssl_context
        self.server_hostname = server_hostname or host
        self.max_idle = max_idle
        self.connect_timeout = connect_timeout
        self._idle: list[_Connection] = []
        self.opened = 0  # connections opened so far (each a TLS handshake)
        self._host_header = f"{host}:{port}".encode("ascii")

    async def post(self, path: str, body: bytes, *, limit: int) -> Answer:
        """POST ``body`` (JSON) to ``path``; the answer, whatever its status."""
        head = (
            b"POST " + path.encode("ascii") + b" HTTP/1.1\r\nHost: " + self._host_header
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode("ascii") + b"\r\n\r\n"
        )  # fmt: skip
        request = head + body
        connection = self._take_idle()
        if connection is not None:
            try:
                return await self._exchange(connection, request, limit)
            except Broken as exc:
                if not exc.silent:
                    raise
                # A kept-alive connection the node had closed: nothing came back, so
                # the node never read this request; send it once on a new connection.
        return await self._exchange(await self._connect(), request, limit)

    async def _exchange(self, connection: _Connection, request: bytes, limit: int) -> Answer:
        try:
            answer = await connection.start(request, limit)
        except BaseException:
            connection.close()  # cancelled (the deadline) or failed: never reuse it
            raise
        self._give_back(connection)
        return answer

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    def _give_back(self, connection: _Connection) -> None:
        if connection.closed or connection.exchange is not None:
            return
        if len(self._idle) < self.max_idle:
            self._idle.append(connection)
        else:
            connection.close()

    async def _connect(self) -> _Connection:
        self.opened += 1
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.server_hostname,
                ),
                self.connect_timeout,
            )
        except ssl.SSLError as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            detail = getattr(exc, "verify_message", None)  # e.g. "certificate has expired"
            if detail:
                reason = f"{reason} ({detail})"
            raise ConnectFailed(f"the TLS handshake failed: {reason}", tls_reason=reason) from None
        except TimeoutError:
            raise ConnectFailed(f"no connection within {self.connect_timeout:g} s") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect: {exc.strerror or exc}") from None
        return connection
