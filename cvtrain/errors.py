"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""


class CvtrainError(Exception):
    """A problem the user can fix: the message says what is wrong, where, and what to do."""


class DataError(CvtrainError):
    """A dataset file is missing, malformed or unreadable."""


class ConfigError(CvtrainError):
    """A config value is inconsistent with the rest of the run (e.g. a model option the architecture lacks)."""
