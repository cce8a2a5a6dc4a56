"""The one exception type users see: a message that says what went wrong and what to do."""


class ElfkitError(Exception):
    """A user-facing error. The CLI prints only its message; notebooks show it without a chained traceback."""


class DataNotFoundError(ElfkitError, FileNotFoundError):
    pass


class StaleResultsError(ElfkitError):
    pass


class DivergenceError(ElfkitError, FloatingPointError):
    pass
