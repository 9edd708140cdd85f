"""Reaching the container engine and what it refuses."""

from __future__ import annotations

from envrepro.errors.base import EnvreproError


class EngineUnavailableError(EnvreproError):
    """No container engine answers at the configured endpoint. `where` never carries credentials."""

    def __init__(self, where: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"no Docker engine reachable at {where}: {reason}",
            hint=hint
            or "start the engine (dockerd, or `podman system service`), or point DOCKER_HOST "
            "(or `docker context use`) at the engine's address",
        )
        self.where = where
        self.host = where  # the name earlier releases used
        self.reason = reason


class EngineError(EnvreproError):
    """The engine refused a request (other than the cases above)."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"the Docker engine could not {action}: {reason}")
        self.action = action
        self.reason = reason


class EngineTimeoutError(EngineUnavailableError):
    """The engine accepted the connection (or was being reached) but did not answer within the limit."""

    def __init__(self, where: str, timeout_s: float, variable: str) -> None:
        super().__init__(
            where,
            f"no answer within {timeout_s:g} s (the engine connect/answer timeout)",
            hint=f"check that the address is a Docker API endpoint and that the engine is healthy; "
            f"a slow engine may get longer with {variable}=SECONDS",
        )
        self.timeout_s = timeout_s
        self.variable = variable


class EngineConfigError(EnvreproError):
    """The engine's configuration (an environment variable, a docker context) cannot be used."""

    def __init__(self, setting: str, value: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{setting}={value} cannot be used: {reason}", hint=hint)
        self.setting = setting
        self.value = value
        self.reason = reason


class ImageInUseError(EnvreproError):
    """The engine refused to remove an image: a container (running or stopped) or a child image needs it."""

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(
            f"image {ref} is in use and was kept: {reason}",
            hint="remove the container (`docker rm`) or the image built on it first",
        )
        self.ref = ref
        self.reason = reason
