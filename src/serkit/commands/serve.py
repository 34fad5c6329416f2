"""`serkit serve MODEL`: the HTTP service and web page for a model bundle or ONNX export (needs the `serve` extra)."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

from ..errors import ConfigError
from .registry import command


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model bundle directory (what training writes), or a .onnx file "
                                                  "from `serkit export` (run by ONNX Runtime on the CPU)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes the "
                        "service to the network, which has no authentication: put a reverse proxy in front, "
                        "docs/serving.md)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument("--device", default="cpu", help="torch device for the model (default: cpu)")
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest upload accepted, MB (default: 25)")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="longest audio accepted, seconds (default: 600)")
    p.add_argument("--max-concurrent", type=int, default=2,
                   help="inferences run at once; more requests wait (default: 2)")
    p.add_argument("--max-waiting", type=int, default=64,
                   help="requests that may be inside beyond those running (uploading or waiting for a slot); "
                        "more get 503 (default: 64)")
    p.add_argument("--timeout-seconds", type=float, default=60.0,
                   help="longest inference, seconds; a longer one gets 504 and is stopped (default: 60)")
    p.add_argument("--upload-timeout-seconds", type=float, default=60.0,
                   help="longest time for an upload to arrive, seconds; then 408 (default: 60)")


@command("serve", "serve a model bundle over HTTP: POST /predict, a web page at /, the OpenAPI page at /docs",
         _arguments)
def run(args: argparse.Namespace) -> int:
    # asyncio's bind() would refuse it with an OverflowError traceback, after the model has loaded; port 0 (any
    # free port) is refused too, since the address printed below would not be the one listened on
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port is {args.port}; expected a TCP port from 1 to 65535")
    _check_host(args.host, args.port)
    try:
        import uvicorn

        from ..serve import ServeLimits, create_app
    except ImportError as e:
        raise ConfigError(f"serkit serve needs the 'serve' extra ({e}): pip install 'serkit[serve]'") from None
    from .. import EmotionRecognizer
    from ..util.onednn import cap_primitive_cache

    cap_primitive_cache()  # uploads of every length: without a cap, memory grows with the number served
    limits = ServeLimits.from_cli(args.max_upload_mb, args.max_seconds, args.max_concurrent, args.max_waiting,
                                  timeout_seconds=args.timeout_seconds,
                                  upload_timeout_seconds=args.upload_timeout_seconds)
    recognizer = EmotionRecognizer.load(args.model, device=args.device)
    if not _is_loopback(args.host):
        print(f"serkit serve: warning: listening on {args.host}: anyone who can reach this machine can use "
              "the service (it has no authentication)", file=sys.stderr)
    print(f"serkit serve: {args.model} ({', '.join(recognizer.labels)}) on http://{args.host}:{args.port}/ "
          f"(API: /docs)", flush=True)
    uvicorn.run(create_app(recognizer, limits), host=args.host, port=args.port, log_level="info",
                **limits.uvicorn_options())
    return 0


def _check_host(host: str, port: int) -> None:
    """ConfigError unless `host` is an address or a name this machine resolves (uvicorn would log a bare
    "Name or service not known" after the model has loaded). Whether the address is this machine's is left to
    the bind, whose error names it."""
    if host == "":  # asyncio's "every interface"
        return
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise ConfigError(f"--host {host}: not an IP address or a host name this machine resolves "
                          f"({error.args[-1] if error.args else error})") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
