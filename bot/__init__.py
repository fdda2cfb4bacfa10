"""The Telegram bot: ``bot.app.build_application`` composes it, ``bot.__main__`` runs it."""
