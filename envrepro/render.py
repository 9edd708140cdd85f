"""Render: Target + Lock -> the build directory's files. Pure: same inputs, byte-identical output.

Templates live in templates/ at the repository root (users copy and customise them); the wheel ships them
as envrepro/templates. `templates_dir()` finds the installed copy first, then the source checkout's.

The jinja2 Environment uses StrictUndefined (a misspelt or missing variable is an error, never an empty
string) and autoescape off: the output is a Dockerfile, not HTML, so HTML escaping would corrupt `&&` and
quotes. Instead every `{{ value }}` passes `grammar.dockerfile_finalize`: text is escaped by the one
escaping function (`grammar.dockerfile_escape`: printable ASCII, no line break can survive), unless a filter
already made it safe — `dockerfile_quote` (a JSON-form double-quoted string, for ENV and LABEL),
`dockerfile_key` (an ENV name), `dockerfile_image` (a FROM reference), `dockerfile_word` (an unquoted word);
those refuse (UnsafeValueError) what they cannot make safe.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envrepro.errors import TemplateNotFoundError
from envrepro.grammar import (
    dockerfile_finalize,
    dockerfile_image,
    dockerfile_key,
    dockerfile_program,
    dockerfile_quote,
    dockerfile_word,
)
from envrepro.target import UID, Lock, Rendered, Target

if TYPE_CHECKING:
    import jinja2

DOCKERFILE_TEMPLATE = "Dockerfile.j2"
VENV = "/opt/venv"
USER = "envrepro"
HOME = "/home/envrepro"

_PACKAGE_TEMPLATES = Path(__file__).resolve().parent / "templates"  # installed wheel (force-include)
_SOURCE_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"  # source checkout


def render(target: Target, lock: Lock) -> Rendered:
    """The Dockerfile for `target` and the lock file it installs, sorted by path."""
    template = _environment(templates_dir()).get_template(DOCKERFILE_TEMPLATE)
    dockerfile = template.render(template_context(target))
    files = (("Dockerfile", dockerfile.encode()), ("requirements.lock.txt", lock.text.encode()))
    return Rendered(files=tuple(sorted(files)))


def templates_dir(candidates: tuple[Path, ...] = (_PACKAGE_TEMPLATES, _SOURCE_TEMPLATES)) -> Path:
    """The first directory holding the Dockerfile template: the installed package's, else the checkout's."""
    for candidate in candidates:
        if (candidate / DOCKERFILE_TEMPLATE).is_file():
            return candidate
    raise TemplateNotFoundError(DOCKERFILE_TEMPLATE, candidates)


def template_context(target: Target) -> dict[str, Any]:
    """Every variable the templates use (templates/README.md describes each)."""
    labels = dict(target.labels)
    return {
        "base_image": target.base_image,
        "cuda": target.cuda,
        "cudnn": target.cudnn,
        "env": list(target.env),
        "home": HOME,
        "kind": target.kind,
        "labels": list(target.labels),
        "platform": target.platform,
        "python": target.python_executable,
        "python_version": target.python_version,
        "reason": target.reason,
        "snapshot_digest": labels.get("io.envrepro.snapshot.digest", "unknown"),
        "uid": UID,
        "user": USER,
        "variant": target.variant,
        "venv": VENV,
    }


@cache
def _environment(directory: Path) -> jinja2.Environment:
    import jinja2  # noqa: PLC0415 - imported when rendering: `build --render-only` and bisect render, parity does not

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - a Dockerfile, not HTML; escaping is dockerfile_finalize's job
        finalize=dockerfile_finalize,
    )
    env.filters.update(
        dockerfile_quote=dockerfile_quote,
        dockerfile_key=dockerfile_key,
        dockerfile_image=dockerfile_image,
        dockerfile_word=dockerfile_word,
        dockerfile_program=dockerfile_program,
    )
    return env
