"""`python -m services.voice_client`: the command-line voice client."""

from services.voice_client.cli import main

raise SystemExit(main())
