"""`python -m services.discord_bot`: run the Discord voice bot."""

from services.discord_bot.app import build_app
from services.discord_bot.settings import load_settings
from services.kit.serve import serve

settings = load_settings()
serve(build_app(settings), "discord", settings)
