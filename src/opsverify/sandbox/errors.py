"""The one error the sandbox raises for anything a user can act on."""


class SandboxError(RuntimeError):
    """The sandbox cannot be brought to, or kept in, the requested state; the message says
    what is wrong and which log or setting to look at."""
