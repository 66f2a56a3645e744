"""Write an untracked `.env` with freshly generated keys for docker compose (mode 600).

    python scripts/make_env.py            # refuses to touch an existing .env
    python scripts/make_env.py --force    # new keys (running containers keep the old ones)

The keys are printed once; `.env` is the only place they are kept. Compose reads `.env` for
`${VAR}` interpolation (the base file refuses to start without ORCHESTRATOR_API_KEYS) and
passes it to every service as an optional env file. `make run` does not read it: the local
mesh stays keyless on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def new_key(prefix: str) -> str:
    """A random URL-safe key (256 bits) with a prefix that says what it is for."""
    return f"{prefix}-{secrets.token_urlsafe(32)}"


def generate(ui_username: str = "tester") -> dict[str, str]:
    """Every secret the compose files interpolate, freshly generated."""
    client = new_key("ao-client")
    ui = new_key("ao-ui")
    discord = new_key("ao-discord")
    return {
        # The UI's and the bot's keys are client keys too: the orchestrator must accept them.
        "ORCHESTRATOR_API_KEYS": ",".join((client, ui, discord)),
        "ADMIN_API_KEYS": new_key("ao-admin"),
        "MESH_TOKEN": new_key("ao-mesh"),
        "UI_ORCHESTRATOR_API_KEY": ui,
        "UI_USERNAME": ui_username,
        "UI_PASSWORD": secrets.token_urlsafe(18),
        "DISCORD_ORCHESTRATOR_API_KEY": discord,
        # Keeps the bot's session ids stable across restarts (and unguessable).
        "DISCORD_SESSION_SECRET": secrets.token_urlsafe(32),
    }


def render(values: dict[str, str]) -> str:
    """The .env text: a header and KEY=VALUE lines."""
    head = (
        "# Written by scripts/make_env.py: secrets for docker compose. Keep it out of git.\n"
        "# ORCHESTRATOR_API_KEYS: client bearer keys (comma-separated; the UI's and the\n"
        "# Discord bot's keys are among them). ADMIN_API_KEYS: /admin and /escalations.\n"
        "# MESH_TOKEN: what every stage service requires from the orchestrator and tts-bark.\n"
        "# Add overrides below (e.g. LLM_FALLBACK_URL, LLM_FALLBACK_API_KEY, DISCORD_BOT_TOKEN).\n"
    )
    return head + "".join(f"{k}={v}\n" for k, v in values.items())


def write_env(path: Path, values: dict[str, str]) -> None:
    """Create `path` with mode 600 from the start (never world-readable, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(render(values))
    os.chmod(path, 0o600)  # O_CREAT's mode is ignored for a file that already existed


def main(argv: list[str] | None = None) -> int:
    """Write .env unless it exists (or --force); print the keys once."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--path", type=Path, default=ROOT / ".env")
    ap.add_argument("--force", action="store_true", help="replace an existing file")
    ap.add_argument("--ui-username", default="tester")
    ap.add_argument("--quiet", action="store_true", help="do not print the keys")
    args = ap.parse_args(argv)
    if args.path.exists() and not args.force:
        print(f"{args.path} exists; keeping its keys (--force writes new ones)")
        return 0
    values = generate(args.ui_username)
    write_env(args.path, values)
    print(f"wrote {args.path} (mode 600). These keys are shown once:")
    if not args.quiet:
        for key, value in values.items():
            print(f"  {key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
