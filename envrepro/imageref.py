"""Image references as the Docker engine parses them (the distribution/reference grammar), checked before
any work so that a bad `--tag` is exit 2 at once, not an engine error after a long build.

    reference := name [":" tag]          name := [domain "/"] component ("/" component)*
    component := [a-z0-9]+ (separator [a-z0-9]+)*     separator := "." | "_" | "__" | "-"+
    domain    := host [":" port]          tag := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest    := algorithm ":" hex         (after "@"; allowed where a reference may pin one, not in --tag)
A name is at most 255 characters. This module is the one home of that grammar: snapshot fields
(grammar.py), flags (options.py), `diff image:` and `--tag` all check references here.
"""

from __future__ import annotations

import re

from envrepro.errors import ImageRefError

MAX_NAME = 255
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
# A first component is a registry only with a dot, a port, or as localhost (the engine's rule); otherwise it
# is part of the name, and must be lowercase like the rest.
_DOMAIN = rf"(?:(?:{_LABEL}(?:\.{_LABEL})+|localhost|\[[0-9a-fA-F:]+\])(?::[0-9]+)?|{_LABEL}:[0-9]+)"
_NAME = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")


def check_reference(value: str, option: str) -> str:
    """`value` if it is a valid NAME[:TAG][@DIGEST]; else ImageRefError naming `option` and the rule."""
    name_tag, sep, digest = value.partition("@")
    if sep and not _DIGEST.fullmatch(digest):
        raise ImageRefError(option, value, "a digest is ALGORITHM:HEX, e.g. @sha256:<64 hex digits>")
    check_tag_reference(name_tag, option)
    return value


def check_tag_reference(value: str, option: str = "--tag") -> str:
    """`value` if it is a valid NAME[:TAG] for `docker tag`; else ImageRefError naming the rule broken."""
    if not value:
        raise ImageRefError(option, value, "it is empty")
    if "@" in value:
        raise ImageRefError(option, value, "a tag names NAME:TAG, not a digest (@sha256:...)")
    name, tag = split_tag(value)
    if tag is not None and not _TAG.fullmatch(tag):
        raise ImageRefError(option, value, "the tag is 1-128 letters, digits, '_', '.' or '-', not starting "
                            "with '.' or '-'")  # fmt: skip
    if len(name) > MAX_NAME:
        raise ImageRefError(option, value, f"the name is longer than {MAX_NAME} characters")
    if not _NAME.fullmatch(name):
        raise ImageRefError(option, value, _name_rule(name))
    return value


def split_tag(ref: str) -> tuple[str, str | None]:
    """`name:tag` -> (name, tag); no tag -> (name, None). A registry's `:port` is not a tag."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, None
    return name, tag


def _name_rule(name: str) -> str:
    path = (
        name.split("/", 1)[1] if "/" in name and _looks_like_domain(name.split("/", maxsplit=1)[0]) else name
    )
    if path != path.lower():
        return "the repository name must be lowercase"
    return (
        "the name is path components of lowercase letters and digits, separated inside by '.', '_', '__' "
        "or '-' and by '/' between them"
    )


def _looks_like_domain(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost"
