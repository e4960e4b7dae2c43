"""Serve the browser demo locally, with the headers that enable wasm threads.

    python web/serve.py                  # http://127.0.0.1:8000/  (threads on)
    python web/serve.py --no-isolation   # the same page without the headers: one thread

onnxruntime-web runs several wasm threads only when the page is "cross-origin
isolated", which needs two response headers (COOP and COEP below); every file the
page loads then needs a Cross-Origin-Resource-Policy. Python's plain
`python -m http.server` sends none of them, and guesses no type for .mjs files.
Standard library only. Run `npm ci --prefix web` once before serving.
"""
from __future__ import annotations

import argparse
import functools
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}

# Types a browser insists on: module scripts must be JavaScript, and
# WebAssembly.instantiateStreaming accepts only application/wasm.
CONTENT_TYPES = {
    ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
    ".json": "application/json", ".onnx": "application/octet-stream",
    ".css": "text/css", ".html": "text/html", ".png": "image/png", ".map": "application/json",
}


class DemoHandler(SimpleHTTPRequestHandler):
    """Static files from one folder, with isolation headers unless turned off."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **CONTENT_TYPES}

    def __init__(self, *args, isolation: bool = True, quiet: bool = False, **kwargs):
        self.isolation = isolation
        self.quiet = quiet
        super().__init__(*args, **kwargs)

    def end_headers(self) -> None:
        if self.isolation:
            for name, value in ISOLATION_HEADERS.items():
                self.send_header(name, value)
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-cache")  # edits show up on reload
        super().end_headers()

    def log_message(self, format, *args) -> None:
        if not self.quiet:
            super().log_message(format, *args)


def make_server(root=WEB_DIR, port: int = 8000, isolation: bool = True,
                host: str = "127.0.0.1", quiet: bool = False) -> ThreadingHTTPServer:
    """An HTTP server for root; port 0 picks a free port (see server.server_address)."""
    handler = functools.partial(DemoHandler, directory=str(root), isolation=isolation,
                                quiet=quiet)
    return ThreadingHTTPServer((host, port), handler)


def check_runtime_installed(root: Path) -> str | None:
    """A warning when a package the page loads (onnxruntime-web, fast-png) is missing
    from root/node_modules, else None."""
    missing = [name for name in ("onnxruntime-web", "fast-png")
               if not (root / "node_modules" / name / "package.json").is_file()]
    if not missing:
        return None
    return (f"warning: {' and '.join(missing)} missing from {root}/node_modules: "
            f"run 'npm ci --prefix {root}' first, or the page cannot work")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0 to reach it from other machines)")
    p.add_argument("--root", type=Path, default=WEB_DIR, help="folder to serve")
    p.add_argument("--no-isolation", action="store_true",
                   help="leave out the COOP/COEP headers: the page then runs one wasm thread")
    p.add_argument("--quiet", action="store_true", help="do not log each request")
    args = p.parse_args(argv)
    warning = check_runtime_installed(args.root)
    if warning:
        print(warning, file=sys.stderr)
    try:
        server = make_server(args.root, args.port, not args.no_isolation, args.host, args.quiet)
    except OSError as e:
        print(f"error: cannot listen on {args.host}:{args.port} ({e.strerror})", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    mode = "off: one wasm thread" if args.no_isolation else "on: wasm threads enabled"
    print(f"serving {args.root} at http://{host}:{port}/ (cross-origin isolation {mode})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
