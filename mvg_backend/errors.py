"""Errors the engine raises for problems a user can fix."""


class MVGInputError(ValueError):
    """A bad input: the message names the input and says how to fix it."""


class MVGRuntimeError(RuntimeError):
    """A run that went wrong (e.g. NaNs in the latents); the message says what to try."""
