"""Bisect's orchestration on the fake engine: parity that passes builds nothing; a variable is found by
run-time variants alone; packages cost one derived image per distinct set, counted and bounded by
--max-builds; the images a run built are removed unless kept, and a rerun with --keep is a cache hit."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.fake_engine import ContainerFs, FakeEngine
from test_parity_unit import IMAGE, recorded  # noqa: F401 - the fixture, reused

from envrepro.bisect import BisectRequest, bisect
from envrepro.engine_api import ImageInfo, RunResult
from envrepro.errors import LockError
from envrepro.parity import ParityRequest
from envrepro.runner import OUT_DIR
from envrepro.target import Lock, LockedRequirement, Target
from envrepro.tolerance import Tolerances
from envrepro.variant_build import CONFLICT_FILE

Recorded = tuple[Path, Path, dict[str, Any]]


class World:
    """The image under test: which variables it sets and which versions it installs; the probe's outputs
    drift by `delta` for each cause still different from training in a run."""

    def __init__(self, raw: Mapping[str, Any], env: Mapping[str, str], versions: Mapping[str, str],
                 causes: Sequence[str]) -> None:  # fmt: skip
        self.raw, self.env, self.versions, self.causes = raw, dict(env), dict(versions), set(causes)
        self.locks: dict[str, dict[str, str]] = {}  # lock input digest -> the pins it installs
        self.engine = FakeEngine(images={IMAGE: ImageInfo("sha256:base", 1, (IMAGE,), {}, ())})
        self.engine.handlers = _AnyImage(self.run)  # type: ignore[assignment]
        self.contexts: dict[str, dict[str, bytes]] = {}  # tag -> the files its build read
        build = self.engine.build

        def built(context_tar: bytes, *, tag: str, **options: Any) -> Any:
            result = build(context_tar, tag=tag, **options)
            self.contexts[tag] = self.engine.builds[-1]
            return result

        self.engine.build = built  # type: ignore[method-assign]

    def installed(self, image: str, base: Mapping[str, str]) -> dict[str, str]:
        """What a variant's Dockerfile leaves installed: the uninstalled names out, its files image's in."""
        dockerfile = self.contexts[image]["Dockerfile"].decode().replace("\\\n", " ")
        removed = re.search(r"/bin/python -I - ([^\n]*)", dockerfile)
        files = re.search(r"COPY --from=(\S+) ", dockerfile)
        versions = {k: v for k, v in base.items() if not removed or k not in removed.group(1).split()}
        lock = self.contexts[files.group(1)]["variant.lock.txt"].decode() if files else ""
        return {**versions, **dict(re.findall(r"^([\w.-]+)==(\S+)", lock, flags=re.MULTILINE))}

    def lock(self, target: Target, out_dir: Path) -> Lock:
        pins = {r.name: r.version for r in target.requirements}
        text = "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
        digest = hashlib.sha256(text.encode()).hexdigest()
        self.locks[digest] = pins
        locked = tuple(LockedRequirement(n, v, ("sha256:" + "0" * 64,)) for n, v in sorted(pins.items()))
        return Lock(text=text, requirements=locked, input_digest=digest)

    def run(
        self, image: str, command: Sequence[str], fs: ContainerFs, environment: Mapping[str, str]
    ) -> RunResult:
        unset = {command[i + 1] for i, word in enumerate(command[:-1]) if word == "-u"}
        env = {k: v for k, v in {**self.env, **environment}.items() if k not in unset and k != "HOME"}
        training_env = self.raw["environment"]["env"]
        training = {d["name"]: d["version"] for d in self.raw["environment"]["distributions"]}
        versions = {_key(k): v for k, v in {**training, **self.versions}.items()}
        versions = self.installed(image, versions) if image in self.contexts else versions
        moved = [n for n in self.causes if (env.get(n) if n.isupper() else versions.get(_key(n)))
                 != (training_env.get(n) if n.isupper() else training.get(n))]  # fmt: skip
        out = fs.path(OUT_DIR)
        with np.load(fs.path(command[command.index("--inputs") + 1])) as data:
            np.savez(out / "model-0.npz", **{"output.0": data["output.0"] + np.float32(1e-3 * len(moved))})
        template = self.raw["environment"]["distributions"][0]
        dists = [{**template, "name": name, "version": version} for name, version in sorted(versions.items())]
        environment_record = {**self.raw["environment"], "env": env, "distributions": dists}
        model = {**self.raw["models"][0], "reference": None}
        (out / "record.json").write_text(json.dumps({"environment": environment_record, "models": [model]}))
        return RunResult(0, "ok")


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class _AnyImage(dict):  # type: ignore[type-arg]
    def __init__(self, run: Any) -> None:
        super().__init__()
        self.run = run

    def get(self, image: str, default: Any = None) -> Any:
        return lambda command, fs, environment: self.run(image, command, fs, environment)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def run(world: World, snap: Path, model: Path, **options: Any):  # type: ignore[no-untyped-def]
    parity = ParityRequest(
        snapshot_path=snap, model=model, image=IMAGE, tolerances=Tolerances(atol=0, rtol=0)
    )
    return bisect(BisectRequest(parity, **options), lambda: world.engine, locker=world.lock)


def variants(world: World) -> list[dict[str, bytes]]:
    """The variant images built (FROM the image), without their files images (FROM scratch)."""
    return [b for b in world.engine.builds if b"\nFROM scratch\n" not in b["Dockerfile"]]


def files_images(world: World) -> list[dict[str, bytes]]:
    return [b for b in world.engine.builds if b"\nFROM scratch\n" in b["Dockerfile"]]


def training_version(raw: Mapping[str, Any], name: str) -> str:
    return next(d["version"] for d in raw["environment"]["distributions"] if d["name"] == name)


def test_parity_that_passes_builds_nothing_and_tries_no_variant(recorded: Recorded) -> None:  # noqa: F811
    snap, model, raw = recorded
    world = World(raw, {}, {}, causes=["TF_ENABLE_ONEDNN_OPTS"])
    result = run(world, snap, model)
    assert result.baseline.passed
    assert (result.trials, result.builds, world.engine.builds) == ((), 0, [])
    assert len(world.engine.runs) == 1


def test_a_variable_is_found_by_run_time_variants_without_a_build(recorded: Recorded) -> None:  # noqa: F811
    snap, model, raw = recorded
    world = World(raw, {"TF_ENABLE_ONEDNN_OPTS": "0", "OMP_NUM_THREADS": "3"}, {"numpy": "1.0.0"},
                  causes=["TF_ENABLE_ONEDNN_OPTS"])  # fmt: skip
    result = run(world, snap, model)
    assert [g.key for g in result.cause] == ["TF_ENABLE_ONEDNN_OPTS"]
    assert result.builds == 0 and world.engine.builds == []
    cause = result.cause_trial
    assert cause is not None and cause.max_abs_error == 0
    # the variant ran in the same locked-down sandbox, with the variable unset as in training
    last = world.engine.runs[-1]
    assert last.network_disabled and last.user == world.engine.runs[0].user
    assert "TF_ENABLE_ONEDNN_OPTS" not in last.environment


def test_a_variable_and_a_package_together_are_both_in_the_cause_and_builds_are_counted(
    recorded: Recorded,  # noqa: F811
) -> None:
    snap, model, raw = recorded
    numpy = training_version(raw, "numpy")
    world = World(raw, {"TF_ENABLE_ONEDNN_OPTS": "0"}, {"numpy": "1.0.0", "h5py": "0.1"},
                  causes=["TF_ENABLE_ONEDNN_OPTS", "numpy"])  # fmt: skip
    result = run(world, snap, model)
    assert sorted(g.key for g in result.cause) == ["TF_ENABLE_ONEDNN_OPTS", "numpy"]
    assert result.builds == len(variants(world)) == sum(t.built for t in result.trials) > 0
    assert result.removed and not any(tag in world.engine.images for tag in result.removed)
    lock = files_images(world)[0]["variant.lock.txt"].decode()
    assert lock.startswith((f"numpy=={numpy} ", "h5py=="))  # only the changed distribution
    assert f"\nFROM {IMAGE}\n" in variants(world)[0]["Dockerfile"].decode()


def test_a_rebuilt_image_reuses_the_files_image_and_the_lock_and_only_rebuilds_the_variant(
    recorded: Recorded,  # noqa: F811
) -> None:
    snap, model, raw = recorded
    world = World(raw, {}, {"numpy": "1.0.0"}, causes=["numpy"])
    locked: list[str] = []
    counting = world.lock
    world.lock = lambda target, out: locked.append(str(out)) or counting(target, out)  # type: ignore[method-assign,func-returns-value]
    first = run(world, snap, model)
    world.engine.images[IMAGE] = ImageInfo("sha256:rebuilt", 1, (IMAGE,), {}, ())  # same pins, new ID
    again = run(world, snap, model)
    assert [g.key for g in again.cause] == ["numpy"] and again.builds == first.builds == 1
    assert len(variants(world)) == 2 and len(files_images(world)) == 1  # the files image: a cache hit
    assert len(set(locked)) == 1  # one lock directory for both: the lock is kept by its inputs


def test_max_builds_stops_building_and_says_the_search_is_incomplete(recorded: Recorded) -> None:  # noqa: F811
    snap, model, raw = recorded
    world = World(raw, {}, {"numpy": "1.0.0", "h5py": "0.1"}, causes=["numpy"])
    result = run(world, snap, model, max_builds=0)
    assert result.cause is None and not result.complete
    assert world.engine.builds == []
    assert all(t.passed is None and "--max-builds 0" in t.note for t in result.trials)


def test_kept_variants_make_a_rerun_a_cache_hit(recorded: Recorded) -> None:  # noqa: F811
    snap, model, raw = recorded
    world = World(raw, {}, {"numpy": "1.0.0"}, causes=["numpy"])
    first = run(world, snap, model, keep=True)
    assert [g.key for g in first.cause] == ["numpy"] and first.builds == 1 and first.removed == ()
    again = run(world, snap, model, keep=True)
    assert [g.key for g in again.cause] == ["numpy"]
    assert again.builds == 0 and len(variants(world)) == len(files_images(world)) == 1


MANY = {"tensorflow_cpu": "9.9.9", **dict.fromkeys(("h5py", "absl-py", "gast", "six", "wrapt"), "0.1")}


def test_a_tensorflow_cause_among_many_groups_costs_one_build(recorded: Recorded) -> None:  # noqa: F811
    snap, model, raw = recorded
    world = World(raw, {}, MANY, causes=["tensorflow_cpu"])
    result = run(world, snap, model)
    assert [g.key for g in result.cause] == ["tensorflow"]
    assert [t.groups for t in result.trials] == [("tensorflow",)]  # tried first, alone: nothing else to try
    assert result.builds == len(variants(world)) == 1  # ddmin alone: every group at once first, then halves


def test_a_variable_and_the_tensorflow_group_cost_one_build_for_both(recorded: Recorded) -> None:  # noqa: F811
    snap, model, raw = recorded
    causes = ["TF_ENABLE_ONEDNN_OPTS", "tensorflow_cpu"]
    world = World(raw, {"TF_ENABLE_ONEDNN_OPTS": "0"}, MANY, causes=causes)
    result = run(world, snap, model)
    assert sorted(g.key for g in result.cause) == ["TF_ENABLE_ONEDNN_OPTS", "tensorflow"]
    tried = [(sorted(t.groups), t.passed) for t in result.trials]
    assert tried[:3] == [(["TF_ENABLE_ONEDNN_OPTS"], False), (["tensorflow"], False),
                         (["TF_ENABLE_ONEDNN_OPTS", "tensorflow"], True)]  # fmt: skip
    assert result.builds == 1  # the variable is set at run time in the same variant image


def test_when_the_suspect_is_not_the_cause_delta_debugging_still_finds_it(recorded: Recorded) -> None:  # noqa: F811
    snap, model, raw = recorded
    world = World(raw, {}, MANY, causes=["gast"])
    result = run(world, snap, model)
    assert [g.key for g in result.cause] == ["gast"]
    first = result.trials[0]
    assert first.groups == ("tensorflow",) and first.passed is False  # the one build the shortcut cost
    assert result.trials[1].groups == tuple(g.key for g in result.groups)  # then ddmin, from every group
    assert result.builds == len(variants(world))


def numpy_needing_h5py(
    raw: Mapping[str, Any], error: LockError, failed: list[str]
) -> tuple[World, Callable[[Target, Path], Lock]]:
    """A world whose image has other numpy and h5py, and a lock that raises `error` (the directory it was
    asked to lock into appended to `failed`) when training numpy comes without training h5py, as pip's
    resolver would."""
    numpy, h5py = training_version(raw, "numpy"), training_version(raw, "h5py")
    world = World(raw, {}, {"numpy": "1.0.0", "h5py": "0.1", "wrapt": "0.1"}, causes=["numpy"])
    plain_lock = world.lock

    def lock(target: Target, out_dir: Path) -> Lock:
        pins = {r.name: r.version for r in target.requirements}
        if pins["numpy"] == numpy and pins["h5py"] != h5py:
            failed.append(str(out_dir))
            raise error
        return plain_lock(target, out_dir)

    return world, lock


@pytest.mark.parametrize(
    "message",
    [
        "h5py 0.1 depends on numpy<1.1 (the user requested numpy=={numpy})",
        "ResolutionImpossible: see the docs",
    ],
)
def test_groups_whose_pins_cannot_be_installed_apart_are_merged_and_said_so(
    recorded: Recorded,  # noqa: F811
    message: str,
) -> None:
    snap, model, raw = recorded
    numpy = training_version(raw, "numpy")  # named by the resolver, or not (ddmin):
    world, lock = numpy_needing_h5py(raw, LockError(None, message.format(numpy=numpy)), [])

    lines: list[str] = []
    parity = ParityRequest(
        snapshot_path=snap, model=model, image=IMAGE, tolerances=Tolerances(atol=0, rtol=0)
    )
    result = bisect(BisectRequest(parity), lambda: world.engine, locker=lock, progress=lines.append)
    assert [g.key for g in result.cause] == ["numpy+h5py"]
    assert "numpy cannot be installed without h5py: they move together" in lines
    assert {c.name for c in result.cause[0].changes} == {"numpy", "h5py"}
    assert all(t.passed is not None for t in result.trials)  # no variant was left unresolvable


@pytest.mark.parametrize(
    ("message", "kept"),
    [("ResolutionImpossible: see the docs", True), ("No matching distribution found for numpy==1.2", False)],
)  # what the real lock makes of pip-compile's output: tests/test_lock.py
def test_a_conflict_of_exact_pins_is_kept_and_a_rerun_does_not_resolve_it_again(
    recorded: Recorded,  # noqa: F811
    message: str,
    kept: bool,
) -> None:
    snap, model, raw = recorded
    failed: list[str] = []
    world, lock = numpy_needing_h5py(raw, LockError(None, message, conflict=kept), failed)

    parity = ParityRequest(
        snapshot_path=snap, model=model, image=IMAGE, tolerances=Tolerances(atol=0, rtol=0)
    )
    first = bisect(BisectRequest(parity), lambda: world.engine, locker=lock)
    resolved_first = len(failed)
    assert resolved_first > 0
    again = bisect(BisectRequest(parity), lambda: world.engine, locker=lock)
    assert [g.key for g in again.cause] == [g.key for g in first.cause]
    assert len(failed) == (resolved_first if kept else 2 * resolved_first)  # kept: not resolved again
    assert all((Path(d) / CONFLICT_FILE).is_file() == kept for d in failed)


def test_bad_bisect_flags_are_one_line_and_exit_2(cli: Any, recorded: Recorded) -> None:  # noqa: F811
    snap, model, _ = recorded
    for flag, value in (("--max-builds", "-1"), ("--atol", "lots"), ("--image", "Bad Image")):
        result = cli("bisect", "--snapshot", str(snap), "--model", str(model), flag, value)
        assert result.exit_code == 2
        assert len(result.error_lines) == 1 and flag in result.stderr
        assert "Traceback" not in result.stderr


def test_the_bisect_report_has_a_schema_command(cli: Any) -> None:
    result = cli("schema", "bisect")
    assert result.exit_code == 0
    assert "trials" in json.loads(result.stdout)["properties"]


def test_a_variant_whose_build_fails_is_reported_not_run_and_counted(recorded: Recorded) -> None:  # noqa: F811
    snap, model, raw = recorded
    world = World(raw, {}, {"numpy": "1.0.0"}, causes=["numpy"])
    world.engine.build_messages = [
        {"stream": "Step 1/1 : RUN pip install\n"},
        {"error": "returned a non-zero code: 1"},
    ]
    result = run(world, snap, model)
    assert result.cause is None and result.builds == 1
    assert [t.passed for t in result.trials] == [None]
    assert "non-zero code" in result.trials[0].note


def test_a_companion_only_in_the_image_is_uninstalled_by_its_groups_variant(recorded: Recorded) -> None:  # noqa: F811
    snap, model, raw = recorded
    keras = training_version(raw, "keras")
    world = World(raw, {}, {"keras": "9.9.9", "tensorboard-extra": "1.0", "numpy": "1.0.0"},
                  causes=["tensorboard-extra"])  # fmt: skip
    result = run(world, snap, model)
    assert [g.key for g in result.cause] == ["tensorflow"]
    assert result.cause_trial is not None and result.cause_trial.max_abs_error == 0
    # the tensorflow group's own variant installs its one changed distribution and nothing else
    locks = [f["variant.lock.txt"].decode() for f in files_images(world)]
    assert [text.count("==") for text in locks if text.startswith(f"keras=={keras} ")] == [1]
    assert result.builds == 1  # the prime suspect alone, before any set of groups (no keras+numpy build)
    dockerfiles = [" ".join(v["Dockerfile"].decode().replace("\\\n", " ").split()) for v in variants(world)]
    assert any("/opt/venv/bin/python -I - keras tensorboard-extra COPY" in text for text in dockerfiles)


def test_preprocessing_that_differs_is_a_group_whose_return_restores_parity_without_a_build(
    tmp_path: Path,
) -> None:
    from test_preprocess_unit import SERVING, container, recorded_snapshot

    snap, model, raw = recorded_snapshot(tmp_path)
    engine = FakeEngine(images={IMAGE: ImageInfo("sha256:base", 1, (IMAGE,), {}, ())})
    engine.handlers[IMAGE] = container(raw)
    parity = ParityRequest(snapshot_path=snap, model=model, image=IMAGE, preprocess=f"{SERVING}:normalise",
                           tolerances=Tolerances(atol=0, rtol=0))  # fmt: skip
    result = bisect(BisectRequest(parity), lambda: engine)
    assert [(g.key, g.kind) for g in result.groups] == [("preprocessing", "preprocessing")]
    assert [g.key for g in result.cause] == ["preprocessing"]
    assert result.builds == 0 and engine.builds == []
    (trial,) = result.trials
    assert trial.passed and trial.max_abs_error == 0  # the model, fed the recorded training output, matches
    assert "normalise.py:normalise in the image → as recorded in training" in trial.changed


def test_returning_preprocessing_does_not_hide_a_model_that_differs_too(tmp_path: Path) -> None:
    from test_preprocess_unit import SERVING, container, recorded_snapshot

    snap, model, raw = recorded_snapshot(tmp_path)
    engine = FakeEngine(images={IMAGE: ImageInfo("sha256:base", 1, (IMAGE,), {}, ())})
    engine.handlers[IMAGE] = container(raw, model_delta=1e-3)
    parity = ParityRequest(snapshot_path=snap, model=model, image=IMAGE, preprocess=f"{SERVING}:normalise",
                           tolerances=Tolerances(atol=0, rtol=0))  # fmt: skip
    result = bisect(BisectRequest(parity), lambda: engine)
    assert result.cause is None
    (trial,) = result.trials
    assert trial.passed is False and trial.max_abs_error == pytest.approx(1e-3, rel=1e-3)
