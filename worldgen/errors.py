"""Library error types.

Library code raises these; only the CLI turns them into one-line messages and exit codes.
Every message should name the fix, not just the fault.
"""


class WorldgenError(Exception):
    """Base class of every error worldgen reports to a user."""


class UserInputError(WorldgenError):
    """An argument, option or input file is not usable as given."""


class SceneError(WorldgenError):
    """A scene folder or its manifest is missing, corrupt or unsafe."""


class ModelError(WorldgenError):
    """A checkpoint is missing, corrupt, or does not fit the task."""


class PluginError(WorldgenError):
    """A plugin name is unknown or a plugin cannot do what was asked."""


class UnsupportedTask(WorldgenError):
    """The chosen backend cannot perform the requested task."""
