"""`envrepro build`: snapshot -> resolve -> lock -> render -> context -> engine; this only chains them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from envrepro import runner, snapshot
from envrepro.context import context_tar, write_context
from envrepro.engine_api import (
    BuildOptions,
    ContainerEngine,
    OnEvent,
    OnProgress,
    ProgressEvent,
    StageEvent,
    build_image,
)
from envrepro.errors import EngineError, InputFileError, PlatformUnavailableError
from envrepro.inventory import PATH_LABEL, retire_replaced, with_snapshot_path
from envrepro.lock import LockIn, compute_lock, host_build_secrets
from envrepro.lock_container import ImageLocker, engine_platform
from envrepro.render import render
from envrepro.resolve import resolve
from envrepro.target import PLATFORM_ARCH, BuildSecrets, BuiltImage, Lock, Target, default_image_tag

log = logging.getLogger(__name__)

PATCH_WARNING_SUFFIX = "(patch level differs only)"  # bases.py's warning for a base Python's patch level
PYTHON_VERSION_COMMAND = ("python3", "-c", "import platform; print(platform.python_version())")
MACHINE_COMMAND = ("uname", "-m")  # every base has it; under QEMU it names the emulated machine


@dataclass(frozen=True)
class BuildRequest:
    snapshot_path: Path
    out_dir: Path = Path("build")
    target: Literal["cpu", "gpu", "auto"] = "auto"
    base_image: str | None = None
    platform: str | None = None  # linux/amd64 or linux/arm64; None: the snapshot's machine
    tag: str | None = None
    render_only: bool = False
    pip_cert: Path | None = None
    index_urls: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    exclude_unreproducible: bool = False
    reuse_lock: bool = True
    no_cache: bool = False
    accept_python_patch: bool = False  # drop the warning that the base's Python differs in the patch level
    lock_in: LockIn = "auto"  # where pip-compile runs: see lock.lock_place


@dataclass(frozen=True)
class BuildResult:
    target: Target
    lock: Lock
    out_dir: Path
    files: tuple[str, ...]  # what was written to out_dir
    image: BuiltImage | None = None


def build(
    request: BuildRequest,
    engine: Callable[[], ContainerEngine],
    on_event: OnEvent | None = None,
    on_progress: OnProgress | None = None,
) -> BuildResult:
    """Render the build directory for the snapshot and, unless `render_only`, build the image.

    `engine` is called only when needed (not for --render-only without --base-image). `on_event` hears
    the build's steps; `on_progress` the stages and the running step's output lines."""
    report = on_progress or _ignore
    report(StageEvent("snapshot", f"reading {request.snapshot_path}"))
    snap = snapshot.load(request.snapshot_path)
    secrets = build_secrets(request)
    live = None if request.render_only else engine()
    target = _resolve_target(request, snap, live, report)
    with _cleanup_if_new(request.out_dir):
        report(StageEvent("lock", f"pinning {len(snap.environment.distributions)} distributions"))
        lock = _lock(request, target, secrets, lambda: live or _checked(engine(), target))
        report(StageEvent("render", f"Dockerfile for {len(lock.requirements)} pins on {target.base_image}"))
        rendered = render(target, lock)
        report(StageEvent("context", f"writing {request.out_dir}"))
        ctx = write_context(rendered, secrets, request.out_dir)
    files = tuple(sorted(name for name, _ in rendered.files))
    result = BuildResult(target=target, lock=lock, out_dir=request.out_dir, files=files)
    if live is None:
        return result
    tag = default_image_tag(snap.digest())
    report(StageEvent("build", f"building {tag}"))
    options = BuildOptions(on_event, report, no_cache=request.no_cache, platform=target.platform)
    image = build_image(live, context_tar(ctx), tag=tag, options=options)
    return replace(result, image=_finish_tags(live, image, request.tag, target))


def _ignore(_event: ProgressEvent) -> None:
    return None


def _checked(engine: ContainerEngine, target: Target) -> ContainerEngine:
    """The engine --render-only asks for the lock container, once it is known to run the target's platform
    (an engine that runs another platform's image silently, as Podman does, would lock for the wrong one)."""
    check_engine_platform(engine, target.base_image, target.platform)
    return engine


def _resolve_target(
    request: BuildRequest, snap: snapshot.Snapshot, live: ContainerEngine | None, report: OnProgress
) -> Target:
    """The image's target, its base pinned by digest where the engine knows one; warnings logged."""
    report(StageEvent("resolve", "choosing the base image and the variant"))
    base_python = base_python_of(live, request.base_image) if live and request.base_image else None
    resolved = resolve(
        snap,
        target=request.target,
        base_image=request.base_image,
        base_python=base_python,
        platform=request.platform,
    )
    target = with_snapshot_path(resolved, request.snapshot_path)  # which build replaces which
    if live is not None:
        check_engine_platform(live, target.base_image, target.platform)
        target = pin_base_digest(target, live)
    for warning in build_warnings(request, target, snap.environment.python.version):
        log.warning("%s", warning)
    return target


def build_warnings(request: BuildRequest, target: Target, snapshot_python: str) -> list[str]:
    """The target's warnings, less the base's patch-level one when it was accepted (--accept-python-patch),
    plus what --render-only assumed about a base image it did not inspect."""
    warnings = [
        w
        for w in target.warnings
        if not (request.accept_python_patch and w.endswith(PATCH_WARNING_SUFFIX))
        and not (request.render_only and w.startswith("the Python of "))
    ]
    if request.render_only:
        given = f" with --base-image {request.base_image}" if request.base_image else ""
        why = "from the snapshot" if request.base_image else "from the tag envrepro chose for it"
        warnings.append(
            f"--render-only{given}: the image {target.base_image} was not inspected; "
            f"assuming Python {target.python_version} {why} (snapshot: Python {snapshot_python})"
        )
    return warnings


def _lock(
    request: BuildRequest, target: Target, secrets: BuildSecrets, engine: Callable[[], ContainerEngine]
) -> Lock:
    """The lock, resolved on this host or in a container of the base image (request.lock_in)."""
    locker = ImageLocker(engine, target.base_image, target.python_executable, target.platform, secrets)
    return compute_lock(
        target,
        request.out_dir,
        exclude=request.exclude,
        exclude_unreproducible=request.exclude_unreproducible,
        index=secrets,
        reuse=request.reuse_lock,
        lock_in=request.lock_in,
        in_image=locker,
    )


def _finish_tags(
    engine: ContainerEngine, image: BuiltImage, user_tag: str | None, target: Target
) -> BuiltImage:
    """Add the user's --tag, then untag the `envrepro:<digest>` builds of the same snapshot this replaced."""
    if user_tag and user_tag not in image.tags:
        engine.tag_image(image.tags[0] if image.tags else image.image_id, user_tag)
        image = replace(image, tags=tuple(sorted({*image.tags, user_tag})))
    retire_replaced(engine, image, dict(target.labels)[PATH_LABEL])
    return image


def build_secrets(request: BuildRequest) -> BuildSecrets:
    """The host's pip configuration, with --index-url / --pip-cert taking precedence."""
    secrets = host_build_secrets()
    if request.index_urls:
        secrets = replace(secrets, index_url=request.index_urls[0], extra_index_urls=request.index_urls[1:])
    if request.pip_cert is not None:
        try:
            secrets = replace(secrets, ca_bundle=request.pip_cert.read_bytes())
        except OSError as exc:
            raise InputFileError(request.pip_cert, f"cannot read the CA bundle: {exc.strerror}") from exc
    return secrets


def base_python_of(engine: ContainerEngine, image: str) -> str | None:
    """The exact Python version a base image runs (`python3`), or None when it has none we can run."""
    if not engine.image_exists(image):
        return None  # the engine pulls it at build time, if a registry is reachable
    result = runner.run_command(engine, image, PYTHON_VERSION_COMMAND, runner.Limits(timeout_s=60))
    version = result.logs.strip().splitlines()[-1] if result.exit_code == 0 and result.logs.strip() else ""
    return version or None


def check_engine_platform(engine: ContainerEngine, image: str, platform: str) -> None:
    """Stop before any long work when the engine cannot run `platform` containers of `image`.

    An engine of that platform can. Any other runs it only through an emulator (QEMU in binfmt_misc on
    the engine's machine), which the Engine API does not report: a throwaway container of the base for
    that platform runs `uname -m`, which must name the platform's machine."""
    arch = engine.engine_facts().arch
    if engine_platform(arch) == platform:
        return
    limits = runner.Limits(timeout_s=120)
    try:  # no network: `uname -m` needs none
        result = runner.run_command(
            engine, image, MACHINE_COMMAND, limits, label="platform", platform=platform
        )
    except EngineError as exc:
        detail = f"no {platform} container of it could be created ({exc.reason})"
        raise PlatformUnavailableError(platform, arch, image, detail) from exc
    last = result.logs.strip().splitlines()[-1] if result.logs.strip() else "no output"
    if result.exit_code != 0:
        raise PlatformUnavailableError(platform, arch, image, f"`uname -m` exited {result.exit_code}: {last}")
    if last != PLATFORM_ARCH[platform]:
        detail = f"its container runs as {last}, not {PLATFORM_ARCH[platform]} (no {platform} variant of it)"
        raise PlatformUnavailableError(platform, arch, image, detail)


def pin_base_digest(target: Target, engine: ContainerEngine) -> Target:
    """Pin the base by digest when the engine knows the registry digest of the tag (`name:tag@sha256:...`).

    An image the engine only has locally (imported, or built here) has no registry digest: it stays a tag."""
    if "@" in target.base_image or not engine.image_exists(target.base_image):
        return target
    name = (
        target.base_image.rsplit(":", 1)[0]
        if ":" in target.base_image.rsplit("/", 1)[-1]
        else target.base_image
    )
    digests = [
        d.split("@", 1)[1]
        for d in engine.inspect_image(target.base_image).repo_digests
        if d.startswith(name + "@")
    ]
    if not digests:
        return target
    labels = tuple(sorted({*target.labels, ("org.opencontainers.image.base.digest", digests[0])}))
    return replace(target, base_image=f"{target.base_image}@{digests[0]}", labels=labels)


@contextlib.contextmanager
def _cleanup_if_new(out_dir: Path) -> Iterator[None]:
    """Create `out_dir` if needed; if this run created it and fails, remove it again (leave nothing)."""
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
