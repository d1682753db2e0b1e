"""`lensroute serve`: routing and ranking over a local HTTP API (see `routing.http_api`)."""

from __future__ import annotations

import argparse
import os
import sys

from app.cli.arguments import non_negative_float
from recommender.errors import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def cmd_serve(args: argparse.Namespace) -> int:
    from recommender.errors import LensrouteError
    from routing.http_api import Api, ApiServer
    from routing.router_store import load_router
    from routing.serve import RoutingSession

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0 (any free port) to 65535, not {args.port}")
    session, problem = None, None
    try:
        session = RoutingSession(load_router(args.router), cost_weight=args.cost_weight, device=args.device)
    except LensrouteError as exc:  # ranking still works; the chat and route endpoints say why they cannot
        problem = str(exc)

    def load_ranker():  # type: ignore[no-untyped-def]
        from recommender.ranker import Ranker

        return Ranker.load(args.model)

    quiet = getattr(args, "quiet", False)
    api_key = args.api_key if args.api_key is not None else os.environ.get("LENSROUTE_API_KEY") or None
    if api_key is not None and not api_key.strip():
        raise UsageError("--api-key is empty")
    if api_key is None and args.host not in LOOPBACK:
        print(f"warning: listening on {args.host} without an API key: anyone who can reach this port can use it "
              "(set LENSROUTE_API_KEY or --api-key)", file=sys.stderr)
    try:
        server = ApiServer((args.host, args.port), Api(session, problem, load_ranker, api_key, args.device,
                                                       cors_origins=args.cors_origin or ()),
                           log=None if quiet else lambda line: print(line, file=sys.stderr, flush=True))
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); choose another --port") from exc
    routing = (f"router {session.saved.name!r} over {', '.join(m.name for m in session.models)}" if session
               else f"no routing ({problem})")
    print(f"serving on {server.url} — {routing}; POST /v1/chat/completions, /v1/completions, /v1/embeddings, "
          "/v1/route, /v1/rank; "
          f"GET /v1/models, /health{'; API key required' if api_key else ''}. Ctrl-C stops.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("serve", parents=[common], help="route and rank over a local HTTP API (OpenAI-style chat)",
                            description="Serve the calibrated router and the ranker on a local HTTP API: "
                                        "POST /v1/chat/completions (OpenAI's shape; model \"lensroute\" routes, a pool "
                                        "member's name pins it), /v1/completions, /v1/embeddings, /v1/route, /v1/rank; "
                                        "GET /v1/models, /v1/models/NAME, /health.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    p.add_argument("--router", default="default", help="the calibrated router to serve (see `lensroute route list`)")
    p.add_argument("--cost-weight", type=non_negative_float, default=0.0, metavar="λ",
                   help="default trade of predicted score against cost; a request may give its own")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--model", metavar="DIR", help="ranker folder for /v1/rank (default: the trained or bundled one)")
    p.add_argument("--api-key", metavar="KEY",
                   help="require `Authorization: Bearer KEY` on every endpoint but /health (default: $LENSROUTE_API_KEY; "
                        "none: open to whoever reaches the port)")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="let web pages from ORIGIN (e.g. http://localhost:3000; repeatable; * for any) call the API "
                        "from a browser (default: none)")
    p.set_defaults(func=cmd_serve)
