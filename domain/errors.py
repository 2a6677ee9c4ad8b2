"""Domain errors. Their messages are what Docker shows the operator, so they are
written for people: the option, the value, and what would have been accepted."""


class CloudvolError(Exception):
    """Base of every error cloudvol raises on purpose."""


class InvalidVolumeName(CloudvolError):
    pass


class OptionError(CloudvolError):
    """A volume option or flag is unknown, malformed, or not supported yet."""


class VolumeNotFound(CloudvolError):
    def __init__(self, name: str = "") -> None:
        super().__init__("volume not found")
        self.name = name


class VolumeInUse(CloudvolError):
    def __init__(self) -> None:
        super().__init__("volume is in use")


class AlreadyMountedById(CloudvolError):
    def __init__(self) -> None:
        super().__init__("volume is already mounted by this id")


class NotMountedById(CloudvolError):
    def __init__(self) -> None:
        super().__init__("volume is not mounted by this id")


class NotMounted(CloudvolError):
    def __init__(self) -> None:
        super().__init__("volume is not mounted")


class RemoteUnavailable(CloudvolError):
    """The remote could not be reached or refused us; the message carries the real cause."""


class MountFailed(CloudvolError):
    """A mount worker could not bring the FUSE mount up; the message is the worker's own error."""


class StateFileCorrupt(CloudvolError):
    """The state file could not be parsed (it has been moved aside)."""
