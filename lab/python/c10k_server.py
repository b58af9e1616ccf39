"""CPython side of concur-lab's c10k: a TCP echo server on one thread, written the way asyncio's
documentation shows it (asyncio.start_server, a coroutine per connection, reader.read,
writer.write and await writer.drain()).

    python3 c10k_server.py --impl asyncio|uvloop --backlog N

prints "PORT <n>" and echoes on 127.0.0.1:<n> until it is killed (SIGTERM: the default action).
When --impl uvloop cannot be imported it prints "SKIP <reason>" and exits with status 3.
concur-lab's own client process connects and measures; concur-lab reads this process's memory.
"""
import argparse
import asyncio
import resource
import sys

HOST = "127.0.0.1"
SKIP_EXIT_CODE = 3


async def echo(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # the client is gone, and so is this connection
    finally:
        writer.close()


async def serve(backlog):
    server = await asyncio.start_server(echo, HOST, 0, backlog=backlog)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["asyncio", "uvloop"], required=True)
    ap.add_argument("--backlog", type=int, default=1024)
    args = ap.parse_args()
    factory = asyncio.new_event_loop
    if args.impl == "uvloop":
        try:
            import uvloop
        except ImportError as e:
            print(f"SKIP uvloop is not importable in {sys.executable}: {e}", flush=True)
            sys.exit(SKIP_EXIT_CODE)
        factory = uvloop.new_event_loop
    # Ten thousand connections need ten thousand descriptors: take the hard limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = factory()
    try:
        loop.run_until_complete(serve(args.backlog))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
