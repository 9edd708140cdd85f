"""Bisect's own stops: the build budget, and variants whose pins cannot be installed together."""

from __future__ import annotations

from envrepro.errors.base import EnvreproError


class BuildBudgetError(EnvreproError):
    """A variant needed a build after --max-builds builds: bisect stops building and says so."""

    def __init__(self, max_builds: int) -> None:
        super().__init__(
            f"not tried: --max-builds {max_builds} reached",
            hint=f"rerun with --max-builds {max_builds * 2} (variants already built are reused with --keep)",
        )
        self.max_builds = max_builds


class VariantUnresolvableError(EnvreproError):
    """The training pins of some groups cannot be installed next to the image's other pins."""

    def __init__(self, groups: tuple[str, ...], detail: str) -> None:
        super().__init__(f"{' + '.join(groups)} cannot be installed alone: {detail}")
        self.groups = groups
        self.detail = detail
