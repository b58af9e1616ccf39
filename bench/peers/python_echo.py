"""bench/peers/python_echo.py: TCP echo servers in CPython's asyncio, the peers of echo_race.

    /usr/bin/python3 bench/peers/python_echo.py --impl asyncio|uvloop --api protocol|streams --port 0

prints "PORT <n>" and echoes on 127.0.0.1:<n> until SIGTERM or SIGINT. --api protocol is the
Protocol echo of asyncio's documentation (data_received -> transport.write); --api streams is
start_server with reader.read(65536), writer.write and await writer.drain(). Both are written as
their documentation shows, with the default listen backlog (100; echo_client connects in batches
below it). --impl picks the event loop: asyncio's default, or uvloop (exit code 3 and
"SKIP uvloop not importable" on stderr when it cannot be imported). --tls-cert F --tls-key K
serves TLS instead: ssl.create_default_context(Purpose.CLIENT_AUTH) with that certificate chain,
passed as ssl= to create_server / start_server (echo_race --tls). It raises its descriptor
limits (soft and hard) to 131,072 where it may (raise_fd_limit).
"""
import argparse
import asyncio
import resource
import signal
import ssl
import sys

HOST = "127.0.0.1"
SKIP_EXIT_CODE = 3


class EchoProtocol(asyncio.Protocol):
    # Open transports, closed at shutdown so that none is left to the garbage collector.
    open_transports = set()

    def connection_made(self, transport):
        self.transport = transport
        EchoProtocol.open_transports.add(transport)

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        EchoProtocol.open_transports.discard(self.transport)


async def echo_stream(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # the client is gone, and so is this connection
    finally:
        writer.close()


async def serve(api, port, tls):
    loop = asyncio.get_running_loop()
    if api == "protocol":
        server = await loop.create_server(EchoProtocol, HOST, port, ssl=tls)
    else:
        server = await asyncio.start_server(echo_stream, HOST, port, ssl=tls)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    for transport in list(EchoProtocol.open_transports):
        transport.close()


def loop_factory(impl):
    if impl == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        print("SKIP uvloop not importable", file=sys.stderr)
        sys.exit(SKIP_EXIT_CODE)
    return uvloop.new_event_loop


WANTED_DESCRIPTORS = 131072


def raise_fd_limit():
    """A connection is a descriptor, and echo_race goes up to 50,000 of them: the soft and the
    hard limit are raised to 131,072 (2^17, or fs.nr_open if lower), or to the hard limit if it
    is higher. Raising the hard limit needs root (CAP_SYS_RESOURCE); without it the server takes
    the hard limit and says how to raise it (echo_race checks each load against its own limit
    first)."""
    wanted = WANTED_DESCRIPTORS
    try:
        with open("/proc/sys/fs/nr_open") as f:
            wanted = min(wanted, int(f.read()))
    except (OSError, ValueError):
        pass
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return
        except (ValueError, OSError):
            print(f"python_echo.py: at most {hard} descriptors (the hard limit, which only root "
                  f"may raise: ulimit -Hn {wanted})", file=sys.stderr)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--api", choices=["protocol", "streams"], default="protocol")
    parser.add_argument("--port", type=int, required=True, help="0: any free port")
    parser.add_argument("--tls-cert", help="TLS: the server's certificate chain (PEM)")
    parser.add_argument("--tls-key", help="TLS: its private key (PEM)")
    args = parser.parse_args()
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert needs --tls-key")
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    factory = loop_factory(args.impl)
    raise_fd_limit()
    loop = factory()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve(args.api, args.port, tls))
    finally:
        # As asyncio.run does: cancel the handlers still reading (streams; each closes its
        # writer), let them finish, then close the loop.
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()


if __name__ == "__main__":
    main()
