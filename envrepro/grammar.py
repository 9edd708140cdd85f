"""The grammars values have in the real world, as pydantic types; and the one way values leave envrepro.

Parse at the boundary: a snapshot field is one of the `Annotated` types below, so a value that does not have
its real-world shape (a PEP 440 version, a PEP 508 name, a numerics variable, a relative path, a sha256
digest...) is refused when the document is loaded, naming the rule. Escape at the exit: every value that
reaches a Dockerfile goes through `dockerfile_escape` (JSON string escaping, ASCII only, `$` escaped), and
every requirements line is rebuilt by `requirement_line` from a parsed `packaging` Requirement.
Neither can produce a line break: a hostile value is refused or becomes inert text.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as Pep508
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler, Strict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from envrepro import imageref
from envrepro.data import numerics_env_names
from envrepro.errors import ImageRefError, UnsafeValueError

MAX_TEXT = 4096  # free text: error details, model names, CPU model strings
MAX_WORD = 256  # one token: a version, a tag, a name
URL_SCHEMES: tuple[str, ...] = ("http", "https", "file", "ssh", "git", "git+https", "git+ssh", "git+http")
URL_SCHEMES += ("git+file", "hg+https", "hg+http", "hg+ssh", "svn+https", "svn+http", "svn+ssh", "svn")

_PEP508_NAME = re.compile(r"[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]")
_VERSION_CHARS = re.compile(r"[A-Za-z0-9.+!_-]+")
_PYTHON_VERSION = re.compile(r"[0-9]{1,2}\.[0-9]{1,3}\.[0-9]{1,4}")
_DOTTED = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,9}){0,4}")
_TOKEN = re.compile(r"[A-Za-z0-9._+:/,@=-]*")
_ENV_VALUE = re.compile(r"[A-Za-z0-9 _.,:;=/+@%*-]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HASH = re.compile(r"[a-z0-9]{3,16}:[0-9a-f]{32,128}")
_COMPUTE_CAPABILITY = re.compile(r"[0-9]{1,2}\.[0-9]{1,2}")
_WORD = re.compile(r"[A-Za-z0-9._/+:@-]+")
_PRINTABLE = re.compile(r"[\x20-\x7e\t]*")  # a line of printable ASCII (tabs too)

# --- rules: each returns the value or raises ValueError naming the rule (pydantic reports the field) ----


def shown(value: str, limit: int = 60) -> str:
    """A value as it may appear in one line of an error message: ASCII, escaped, shortened."""
    return ascii(value[:limit] + ("..." if len(value) > limit else ""))


def one_line(value: str) -> str:
    """`value` for a one-line message: unchanged when printable ASCII, else JSON-escaped."""
    return value if value.isascii() and value.isprintable() else json.dumps(value)[1:-1]


def _matching(pattern: re.Pattern[str], rule: str, limit: int = MAX_WORD) -> Callable[[str], str]:
    def check(value: str) -> str:
        if len(value) > limit or pattern.fullmatch(value) is None:
            raise ValueError(f"{shown(value)} is not {rule}")
        return value

    return check


def _optional(check: Callable[[str], str]) -> Callable[[str], str]:
    return lambda value: value if value == "" else check(value)


def distribution_name(value: str) -> str:
    """A PEP 508 project name (`canonicalize_name(validate=True)` accepts it)."""
    if len(value) > MAX_WORD or _PEP508_NAME.fullmatch(value) is None:
        raise ValueError(f"{shown(value)} is not a PEP 508 distribution name")
    canonicalize_name(value, validate=True)
    return value


_OS_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!~:-]{0,127}")


def os_version(value: str) -> str:
    """An operating-system package's version (Debian's `1.1build1`, `2:1.0~rc1`): one token, no space."""
    if _OS_VERSION.fullmatch(value) is None:
        raise ValueError(f"{shown(value)} is neither a PEP 440 version nor a package version token")
    return value


def pep440_version(value: str) -> str:
    """A PEP 440 version, exactly as written (local labels such as `+cu118` kept), no whitespace."""
    if len(value) > MAX_WORD or _VERSION_CHARS.fullmatch(value) is None:
        raise ValueError(f"{shown(value)} is not a PEP 440 version")
    try:
        Version(value)
    except InvalidVersion:
        raise ValueError(f"{shown(value)} is not a PEP 440 version") from None
    return value


def text(value: str) -> str:
    """Free text on one line: any printable character, no control characters, at most MAX_TEXT."""
    if len(value) > MAX_TEXT or not value.isprintable():
        raise ValueError(f"{shown(value)} is not printable one-line text of at most {MAX_TEXT} characters")
    return value


def long_text(value: str) -> str:
    """Free text that may span lines (an error detail): printable characters, tabs and line feeds only."""
    if len(value) > 4 * MAX_TEXT or not value.replace("\n", "").replace("\t", "").isprintable():
        raise ValueError(f"{shown(value)} has control characters or is over {4 * MAX_TEXT} characters")
    return value


def host_path(value: str) -> str:
    """A path on the machine the snapshot was taken on: printable, no control characters."""
    if len(value) > MAX_TEXT or not value.isprintable():
        raise ValueError(f"{shown(value)} is not a path (control characters, or over {MAX_TEXT})")
    return value


def relative_path(value: str) -> str:
    """A path inside the snapshot's directory: relative, `/`-separated, no `..`, printable."""
    parts = value.split("/")
    if (
        host_path(value) == ""
        or value.startswith("/")
        or "\\" in value
        or re.match(r"[A-Za-z]:", value)
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValueError(f"{shown(value)} is not a relative path inside the snapshot's directory (no `..`)")
    return value


def url(value: str) -> str:
    """A URL with an allowed scheme (URL_SCHEMES), no whitespace or control characters."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in URL_SCHEMES or not rest or len(value) > MAX_TEXT:
        raise ValueError(f"{shown(value)} is not a URL with a scheme of {', '.join(URL_SCHEMES)}")
    if not value.isprintable() or any(ch.isspace() for ch in value):
        raise ValueError(f"{shown(value)} is not a URL (whitespace or control characters)")
    return value


def timestamp(value: str) -> str:
    """An ISO 8601 date and time (what `snapshot` writes: 2026-11-24T02:38:12+00:00)."""
    try:
        dt.datetime.fromisoformat(_matching(re.compile(r"[0-9T:.+Z-]{10,40}"), "a timestamp")(value))
    except ValueError:
        raise ValueError(f"{shown(value)} is not an ISO 8601 timestamp") from None
    return value


def preprocess_spec(value: str) -> str:
    """`MODULE:FUNCTION` (dotted identifiers) or `FILE.py:FUNCTION` (a host path), as `--preprocess` takes."""
    module, _, function = host_path(value).rpartition(":")
    dotted = all(part.isidentifier() for part in module.split("."))
    if not function.isidentifier() or not (dotted or module.endswith(".py")):
        raise ValueError(f"{shown(value)} is not MODULE:FUNCTION or FILE.py:FUNCTION")
    return value


@cache
def _numerics_names() -> frozenset[str]:
    return frozenset(numerics_env_names())


def env_name(value: str) -> str:
    """One of the numerics-relevant variables (envrepro/data/numerics_env.json): nothing else is recorded."""
    if value not in _numerics_names():
        raise ValueError(
            f"{shown(value)} is not a numerics-relevant variable (envrepro/data/numerics_env.json)"
        )
    return value


def image_reference(value: str) -> str:
    """A Docker image reference: [registry[:port]/]name[:tag][@algorithm:hex] (imageref.py's grammar)."""
    try:
        return imageref.check_reference(value, "image")
    except ImageRefError as exc:
        raise ValueError(f"{shown(value)} is not a Docker image reference: {exc.rule}") from None


# --- the types the snapshot model is made of ---------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A strict `str` field checked by `check` (a rule above, raising ValueError that names it) and
    described by `description` in the JSON Schema: `Annotated[str, Rule(check, description)]`."""

    check: Callable[[str], str]
    description: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, core_schema.str_schema(strict=True))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "description": self.description}


StrictText = Annotated[str, Strict()]
_sha256 = _matching(_SHA256, "a sha256 digest (64 lowercase hex)")
_compute_capability = _matching(_COMPUTE_CAPABILITY, "a compute capability (e.g. 8.0)")
_env_value = _matching(_ENV_VALUE, "an allowed variable value ([A-Za-z0-9 _.,:;=/+@%*-])", 1024)
dotted_version = _matching(_DOTTED, "a dotted version (e.g. 12.5.82)")
_SHA256_TEXT = "a sha256 digest: 64 lowercase hex digits"
_URL_TEXT = "empty, or a URL with an allowed scheme, no whitespace or control characters"
_RELATIVE_TEXT = "a relative '/'-separated path inside the snapshot's directory, no '..'"

DistName = Annotated[str, Rule(distribution_name, "a PEP 508 distribution name")]
Pep440 = Annotated[
    str, Rule(pep440_version, "a PEP 440 version as written (local label kept), no whitespace")
]
OptionalPep440 = Annotated[
    str, Rule(_optional(pep440_version), "empty, or a PEP 440 version as written, no whitespace")
]
PythonVersion = Annotated[
    str, Rule(_matching(_PYTHON_VERSION, "a Python version (x.y.z)"), "a Python version x.y.z")
]
DottedVersion = Annotated[str, Rule(dotted_version, "dotted numbers, e.g. 12.5.82")]
Token = Annotated[
    str, Rule(_matching(_TOKEN, "a token ([A-Za-z0-9._+:/,@=-])"), "a token of [A-Za-z0-9._+:/,@=-]")
]
Identifier = Annotated[
    str, Rule(_matching(_IDENTIFIER, "an identifier"), "an identifier [A-Za-z_][A-Za-z0-9_]*")
]
Text = Annotated[str, Rule(text, "printable one-line text, at most 4096 characters")]
LongText = Annotated[
    str, Rule(long_text, "printable text (line feeds and tabs allowed), at most 16384 characters")
]
HostPath = Annotated[str, Rule(host_path, "a host path: printable, at most 4096 characters")]
PreprocessSpec = Annotated[str, Rule(preprocess_spec, "MODULE:FUNCTION or FILE.py:FUNCTION")]
RelativePath = Annotated[str, Rule(relative_path, _RELATIVE_TEXT)]
OptionalRelativePath = Annotated[str, Rule(_optional(relative_path), f"empty, or {_RELATIVE_TEXT}")]
Url = Annotated[str, Rule(_optional(url), _URL_TEXT)]
Timestamp = Annotated[str, Rule(timestamp, "an ISO 8601 timestamp")]
Sha256 = Annotated[str, Rule(_sha256, _SHA256_TEXT)]
OptionalSha256 = Annotated[
    str, Rule(_optional(_matching(_SHA256, "a sha256 digest")), f"empty, or {_SHA256_TEXT}")
]
ComputeCapability = Annotated[str, Rule(_compute_capability, "a CUDA compute capability major.minor")]
EnvName = Annotated[
    str, Rule(env_name, "a numerics-relevant variable named in envrepro/data/numerics_env.json")
]
EnvValue = Annotated[str, Rule(_env_value, "at most 1024 characters of [A-Za-z0-9 _.,:;=/+@%*-]")]
ImageReference = Annotated[str, Rule(image_reference, "a Docker image reference")]
StrictInt = Annotated[int, Strict()]
Count = Annotated[int, Strict(), Field(ge=0)]
StrictBool = Annotated[bool, Strict()]


# --- the exits: Dockerfile text and requirements lines ----------------------------------------------


class DockerfileText(str):
    """Text already made safe for a Dockerfile by a filter below (the template's finalize passes it on)."""


def dockerfile_escape(value: str) -> str:
    """THE escaping function: JSON string escaping with every non-ASCII and control character as \\uXXXX,
    and `$` escaped. The result is printable ASCII: it cannot hold a line break, so it cannot start an
    instruction. Inside double quotes Docker reads `\\"`, `\\\\` and `\\$` as the character itself."""
    return json.dumps(value, ensure_ascii=True)[1:-1].replace("$", "\\$")


def dockerfile_quote(value: str) -> DockerfileText:
    """A double-quoted Dockerfile string (ENV and LABEL keys and values): taken literally by Docker."""
    return DockerfileText(f'"{dockerfile_escape(value)}"')


def dockerfile_program(source: str) -> DockerfileText:
    """A program as the arguments of `printf '%s\\n'` in a RUN, one single-quoted line each, continued:
    piped to an interpreter, it reads back as `source` without its blank lines. Refused unless printable
    ASCII (the Dockerfile parser would drop a continued line starting with `#`; these start with `'`)."""
    lines = [line for line in source.splitlines() if line.strip()]
    bad = next((line for line in lines if not _PRINTABLE.fullmatch(line)), None)
    if bad is not None:
        raise UnsafeValueError("a program line", shown(bad), "only printable ASCII may appear")
    quoted = ("'" + line.replace("'", "'\\''") + "'" for line in lines)
    return DockerfileText("printf '%s\\n' \\\n" + "".join(f"    {line} \\\n" for line in quoted))


def dockerfile_word(value: object, what: str = "a Dockerfile word") -> DockerfileText:
    """An unquoted word (a path, a user name, an interpreter): refused unless it is [A-Za-z0-9._/+:@-]+."""
    word = str(value)
    if _WORD.fullmatch(word) is None:
        raise UnsafeValueError(what, shown(word), "only [A-Za-z0-9._/+:@-] may appear unquoted")
    return DockerfileText(word)


def dockerfile_key(value: str) -> DockerfileText:
    """An ENV name: an identifier, else refused (an `=` or a space would set another variable)."""
    if _IDENTIFIER.fullmatch(value) is None:
        raise UnsafeValueError("an ENV name", shown(value), "must be an identifier [A-Za-z_][A-Za-z0-9_]*")
    return DockerfileText(value)


def dockerfile_image(value: str) -> DockerfileText:
    """The image of a FROM line: refused unless it is a Docker image reference."""
    try:
        return DockerfileText(image_reference(value))
    except ValueError:
        raise UnsafeValueError("the base image", shown(value), "must be a Docker image reference") from None


def dockerfile_finalize(value: object) -> object:
    """Every `{{ value }}` of a template passes here: filtered values and ints go through, text is escaped."""
    if isinstance(value, DockerfileText) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return dockerfile_escape(str(value))


def requirement_line(name: str, version: str) -> str:
    """`name==version` rebuilt from a parsed PEP 508 Requirement; anything else is refused.

    The name is canonicalised (PEP 503), the version is a validated PEP 440 version with its local label.
    """
    try:
        parsed = Pep508(f"{distribution_name(name)}=={pep440_version(version)}")
    except (ValueError, InvalidRequirement) as exc:
        raise UnsafeValueError("a requirement", shown(f"{name}=={version}"), str(exc)) from None
    (spec,) = parsed.specifier
    if parsed.url or parsed.marker or parsed.extras or spec.operator != "==":
        raise UnsafeValueError("a requirement", shown(str(parsed)), "must be an exact name==version pin")
    return f"{canonicalize_name(parsed.name)}=={spec.version}"


def hash_option(value: str) -> str:
    """`--hash=algorithm:hex` for a lock entry; anything else is refused."""
    if _HASH.fullmatch(value) is None:
        raise UnsafeValueError("a file hash", shown(value), "must be algorithm:hex (e.g. sha256:...)")
    return f"--hash={value}"


def comment_line(parts: Iterable[str]) -> str:
    """A `# ...` comment line for a requirements file, each part escaped so it stays one comment line."""
    return "# " + "".join(dockerfile_escape(part) for part in parts)
