"""What this pytest session owns on an engine it shares with other runs (CI runs, other developers).

Every session has its own run id, ENVREPRO_RUN_ID=pytest-<random>, set in os.environ when the test
suite is loaded, so every envrepro process a test starts labels its containers `io.envrepro.run-id=<it>`.
A test looks only at containers with that label, at tags with the run id in them (`own_tag`), and at
images this session built (`OwnImages`); it never lists the whole engine, and teardown never prunes.

Fixed tags such as envrepro-test/tf221:cpu stay as the build cache between runs (`share_cache`): another
run may retag them at any time, so no test uses them; each uses its own tag, removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from envrepro.engine import DockerEngine
from envrepro.engine_api import RUN_ID_LABEL
from envrepro.errors import EnvreproError

RUN_ID = f"pytest-{secrets.token_hex(4)}"
os.environ["ENVREPRO_RUN_ID"] = RUN_ID  # every envrepro process the tests start inherits it
OWN_CONTAINERS = f"{RUN_ID_LABEL}={RUN_ID}"  # the label filter that finds this session's containers
DEFAULT_TAG_PREFIX = "envrepro:"  # `envrepro build`'s own `envrepro:<digest>` tag
LOCKS = Path.home() / ".cache" / "envrepro" / "test-locks"
LOCK_FILE = "requirements.lock.txt"


def own_tag(repository: str, suffix: str = "") -> str:
    """`repository:<run id>[-suffix]`: a tag no other run uses."""
    return f"{repository}:{RUN_ID}{'-' + suffix if suffix else ''}"


def is_own_tag(tag: str) -> bool:
    return RUN_ID in tag.rpartition(":")[2]


@dataclass
class OwnImages:
    """The images this session built on one engine (by ID: a tag may move to another run's image)."""

    engine: DockerEngine
    image_ids: set[str] = field(default_factory=set)

    def built(self, tag: str) -> str:
        """Record the image `tag` names now (just after this session built it); its ID."""
        image_id = self.engine.inspect_image(tag).image_id
        self.image_ids.add(image_id)
        return image_id

    def share_cache(self, tag: str, cache_tag: str) -> None:
        """Also tag our image `cache_tag`, whose layers then stay for the next run's build cache. The
        image that tag held before goes if nothing tags it any more (no other run uses it then)."""
        before = (
            self.engine.inspect_image(cache_tag).image_id if self.engine.image_exists(cache_tag) else None
        )
        self.engine.tag_image(tag, cache_tag)
        if before and before != self.engine.inspect_image(cache_tag).image_id:
            with contextlib.suppress(EnvreproError):
                if not self.engine.inspect_image(before).tags:
                    self.engine.delete_image(before)

    def remove(self) -> None:
        """Untag what this session tagged on its images (its own tags, `envrepro:<digest>`); an image with
        no tag left goes (the engine keeps layers another image uses). Cache tags keep theirs."""
        for image_id in sorted(self.image_ids):
            with contextlib.suppress(EnvreproError):
                tags = self.engine.inspect_image(image_id).tags
                for tag in tags:
                    if is_own_tag(tag) or tag.rpartition("/")[2].startswith(DEFAULT_TAG_PREFIX):
                        self.engine.delete_image(tag)
                if not tags:
                    self.engine.delete_image(image_id)
        self.image_ids.clear()


@contextlib.contextmanager
def reused_lock(out: Path, name: str) -> Iterator[None]:
    """Seed the build directory `out` with the lock an earlier run's build `name` computed, as a user's
    rebuild in place has it (envrepro reuses it only when the digest of its inputs, on its first line, is
    the one it computes now, else it locks again); keep this build's lock for the next run afterwards."""
    cached = LOCKS / name / LOCK_FILE
    if cached.is_file():
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, out / LOCK_FILE)
    yield
    if (out / LOCK_FILE).is_file():
        keep_lock(cached, (out / LOCK_FILE).read_text(encoding="utf-8"))


def keep_lock(cached: Path, text: str) -> None:
    """Keep a build's lock for the next run, atomically: another session may read it at the same time."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{LOCK_FILE}.{RUN_ID}")
    partial.write_text(text, encoding="utf-8")
    partial.replace(cached)
