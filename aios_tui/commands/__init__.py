"""One module per `aios-tui` subcommand; each exposes ``register(subparsers)``."""
