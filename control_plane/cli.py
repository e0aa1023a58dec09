"""`face-api`: run the REST API (optionally with the embedded CPU Triton) and manage API keys.

face-api serve --embedded-triton          # the main job on one machine, models from a local pack
face-api serve                            # against FACE_API_TRITON_URL (a Triton container or cluster)
face-api keys create --name frontend --scopes detect,analyze,compare   # needs FACE_API_REDIS_URL
face-api keys list | face-api keys revoke KEY_ID
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from pathlib import Path

from pydantic import SecretStr

from control_plane.core.settings import Settings

ADMIN_TOKEN_FILE = "build/admin-token"


def _dev_admin_token(settings: Settings, path: Path) -> tuple[Settings, str]:
    """Without a configured admin token, make one for this run and leave it (mode 0600) where the README's curl
    reads it."""
    if settings.admin_token is not None:
        return settings, "$FACE_API_ADMIN_TOKEN"
    token = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return settings.model_copy(update={"admin_token": SecretStr(token)}), f"$(cat {path})"


def _banner(settings: Settings, admin_ref: str) -> str:
    base = f"http://{settings.host}:{settings.port}"
    state = (
        f"shared state in Redis at {settings.redis_url}"
        if settings.redis_url
        else "no FACE_API_REDIS_URL: API keys, rate limits, usage and the cache are in memory (lost on restart)"
    )
    return f"""
face-api on {base}  (docs {base}/docs, Triton {settings.triton_url})
{state}
create a key:
  curl -s -X POST {base}/v1/admin/keys -H "Authorization: Bearer {admin_ref}" \\
       -H 'Content-Type: application/json' -d '{{"name": "me"}}'
"""


def _serve(args) -> int:
    import uvicorn

    from control_plane.app import create_app
    from control_plane.core.logging import configure_logging

    settings = Settings()
    if args.host:
        settings = settings.model_copy(update={"host": args.host})
    if args.port:
        settings = settings.model_copy(update={"port": args.port})
    configure_logging(settings.log_level, settings.log_json)
    triton = None
    try:
        if args.embedded_triton:
            from face_analysis.cli import start_embedded_triton

            triton = start_embedded_triton(args)
            settings = settings.model_copy(update={"triton_url": triton.grpc_url})
        settings, admin_ref = _dev_admin_token(settings, Path(args.admin_token_file))
        print(_banner(settings, admin_ref), flush=True)
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_config=None,
            timeout_graceful_shutdown=10,
        )
    finally:
        if triton is not None:
            triton.stop()
    return 0


def _store():
    from control_plane.core.redis import SharedRedis
    from control_plane.security.api_keys import KeyStore

    settings = Settings()
    if not settings.redis_url:
        sys.exit(
            "face-api keys needs FACE_API_REDIS_URL (where the API keeps its keys). Without Redis the keys live in the "
            "server's memory: create them with POST /v1/admin/keys and the admin token instead."
        )
    return KeyStore(SharedRedis(settings.redis_url, socket_timeout_s=2.0), settings.redis_prefix)


async def _keys(args) -> int:
    store = _store()
    try:
        if args.action == "create":
            secret, key = await store.create(args.name, args.scopes.split(","), args.tier)
            print(json.dumps({**key.public(), "secret": secret}, indent=2))
            print("the secret is shown once; only its hash is stored", file=sys.stderr)
        elif args.action == "list":
            print(json.dumps([k.public() for k in await store.list()], indent=2))
        elif args.action == "revoke":
            if not await store.revoke(args.key_id):
                print(f"no key {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
    finally:
        await store.redis.close()
    return 0


def parser() -> argparse.ArgumentParser:
    from face_analysis.cli import add_serve_args

    p = argparse.ArgumentParser(prog="face-api", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the REST API")
    serve.add_argument("--host", help="listen address (default FACE_API_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default FACE_API_PORT or 8080)")
    serve.add_argument("--embedded-triton", action="store_true", help="start the embedded CPU Triton on a pack")
    serve.add_argument(
        "--admin-token-file",
        default=ADMIN_TOKEN_FILE,
        help="without FACE_API_ADMIN_TOKEN, a token for this run is written here (default: %(default)s)",
    )
    add_serve_args(serve)
    serve.set_defaults(func=_serve)

    keys = sub.add_parser("keys", help="manage API keys in Redis")
    ksub = keys.add_subparsers(dest="action", required=True)
    create = ksub.add_parser("create")
    create.add_argument("--name", required=True)
    create.add_argument("--scopes", default="detect,analyze,compare,batch", help="comma-separated (admin too)")
    create.add_argument("--tier", default="standard")
    ksub.add_parser("list")
    revoke = ksub.add_parser("revoke")
    revoke.add_argument("key_id")
    keys.set_defaults(func=lambda a: asyncio.run(_keys(a)))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
