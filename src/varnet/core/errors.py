"""The one exception type that the CLI turns into a readable message instead of a traceback."""


class VarnetError(Exception):
    """Bad input or a failed contract: the message names the file, star or rule."""
