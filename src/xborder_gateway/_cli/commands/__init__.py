"""One module per ``xborder`` verb; each defines ``register(subparsers)``."""
