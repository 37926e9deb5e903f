"""One module per subcommand (`fit`, `eval`, `predict`, and scoring a saved predictions file): each builds what it
needs from the typed config and calls the engine. `setup.py` holds what they share."""
