#!/usr/bin/env python3
"""WebSocket peers for redial's tests, written with the `websockets` library (PyPI), so the
server side of each test is someone else's implementation of RFC 6455.

    ws_peer.py MODE [ARG]   prints "READY <port>" once listening on 127.0.0.1 (an ephemeral
                            port; $WS_PEER_HOST and $WS_PEER_PORT choose others; with
                            $WS_PEER_CERT and $WS_PEER_KEY it serves TLS), then serves
                            until killed. Every text or binary message
                            received is appended, one repr() per line, to $WS_PEER_LOG.

Modes:
    echo                 echoes every message (compression off: bytes on the wire as sent)
    close1012 N          connection 1 echoes N messages, then closes with 1012; later ones echo
    status CODE K        the first K upgrades are answered HTTP CODE (503 with Retry-After: 1),
                         then upgrades are accepted and messages echoed
    close1008            closes every connection at once with 1008 "policy says no"
    deaf-close           0.3 s after the upgrade sends Close 1001, then never reads again (sans-IO protocol, raw socket)
    ping-mid-fragment    sends a text message in two fragments with a Ping between them and
                         waits for the Pong before the last fragment; then echoes
    ping-flood           pings every 50 ms with a counter, records each Pong's payload
"""

import asyncio
import http
import os
import socket
import sys
import threading
import time

from websockets.asyncio.server import serve
from websockets.frames import Close
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

LOG = os.environ.get("WS_PEER_LOG")
log_lock = threading.Lock()


def log(line):
    if LOG:
        with log_lock, open(LOG, "a") as f:
            f.write(line + "\n")


conn_count = 0


async def echo(ws):
    async for m in ws:
        log(repr(m))
        await ws.send(m)


async def main_async(mode, args):
    global conn_count
    upgrades = {"n": 0}

    async def handler(ws):
        global conn_count
        conn_count += 1
        me = conn_count
        if mode == "close1012" and me == 1:
            n = int(args[0])
            for _ in range(n):
                m = await ws.recv()
                log(repr(m))
                await ws.send(m)
            log("CLOSE 1012")
            await ws.close(1012, "service restart")
            return
        if mode == "close1008":
            await ws.close(1008, "policy says no")
            return
        if mode == "ping-mid-fragment":
            # A fragmented message with a Ping between its fragments (RFC 6455 §5.4 allows
            # control frames there); the Pong must come back before the message ends.
            proto = ws.protocol
            proto.send_text(b"first half, ", fin=False)
            ws.send_data()
            pong = await ws.ping(b"mid-fragment")
            await asyncio.wait_for(pong, 5)
            log("PONG mid-fragment")
            proto.send_continuation(b"second half", fin=True)
            ws.send_data()
            await echo(ws)
            return
        if mode == "ping-flood":
            async def pinger():
                i = 0
                while True:
                    i += 1
                    waiter = await ws.ping(b"srv%d" % i)
                    try:
                        await asyncio.wait_for(waiter, 5)
                        log("PONG srv%d" % i)
                    except Exception:
                        return
                    await asyncio.sleep(0.05)
            t = asyncio.create_task(pinger())
            try:
                await echo(ws)
            finally:
                t.cancel()
            return
        await echo(ws)

    def process_request(conn, request):
        if mode != "status":
            return None
        code, k = int(args[0]), int(args[1])
        upgrades["n"] += 1
        if upgrades["n"] <= k:
            log("STATUS %d" % code)
            resp = conn.respond(http.HTTPStatus(code), "refused by test\n")
            if code == 503:
                resp.headers["Retry-After"] = "1"
            return resp
        return None

    host = os.environ.get("WS_PEER_HOST", "127.0.0.1")
    port = int(os.environ.get("WS_PEER_PORT", "0"))
    tls = None
    if os.environ.get("WS_PEER_CERT"):
        import ssl
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(os.environ["WS_PEER_CERT"], os.environ["WS_PEER_KEY"])
    async with serve(handler, host, port, compression=None, ssl=tls,
                     process_request=process_request, ping_interval=None,
                     # Reads on while the handler waits (a Ping's answer must not queue
                     # behind 16 unread messages: websockets' default stops reading there).
                     max_size=None, max_queue=None) as server:
        port = server.sockets[0].getsockname()[1]
        print("READY %d" % port, flush=True)
        await asyncio.Future()


def deaf_close():
    """Accepts, completes the handshake with the sans-IO protocol, sends Close 1001 and then
    never reads: its receive window fills and the client's writes block."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print("READY %d" % ls.getsockname()[1], flush=True)
    held = []
    while True:
        s, _ = ls.accept()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        proto = ServerProtocol()
        while True:
            data = s.recv(65536)
            if not data:
                break
            proto.receive_data(data)
            reqs = [e for e in proto.events_received() if isinstance(e, Request)]
            if reqs:
                proto.send_response(proto.accept(reqs[0]))
                for chunk in proto.data_to_send():
                    s.sendall(chunk)
                # Long enough for the client to be writing a big message when Close comes.
                time.sleep(0.3)
                proto.send_close(1001, "going away")
                for chunk in proto.data_to_send():
                    s.sendall(chunk)
                log("CLOSE 1001 then deaf")
                break
        held.append(s)  # open, never read again


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "deaf-close":
        deaf_close()
    else:
        asyncio.run(main_async(mode, args))


if __name__ == "__main__":
    main()
