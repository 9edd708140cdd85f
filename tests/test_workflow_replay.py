"""The reusable workflow, replayed on the example repository against the real Docker engine.

The jobs and steps come from .github/workflows/parity.yml itself, called with the `with:` of
examples/tiny-model/.github/workflows/parity.yml: tests/support/gha.py evaluates their `${{ }}`
expressions and `if:` conditions and runs every `run:` script with bash, in the workflow's order, with
the env the runner would give it (GITHUB_OUTPUT, GITHUB_PATH, GITHUB_STEP_SUMMARY, RUNNER_TEMP...).
Only the `uses:` steps are stand-ins: checkout copies the example into a fresh workspace per job,
setup-python puts this Python on PATH, the Actions cache starts empty (a repository's first run) and
records what is saved, upload-artifact collects the files it would upload. So a change to a script, a
condition or an output of the workflow changes what this test runs.

Two deviations from a hosted runner: the image is built on the local debootstrap base, passed through
the workflow's own `base-image` input (no registry is reachable here), and envrepro is installed from
this checkout (`envrepro-spec` = a wheel of it, built once for the replay's five jobs) instead of the
release the example names.

The engine is shared with other runs, which replay the same workflow: the base goes in under this
session's own tag, so the build id, and with it the `envrepro:ci-<build id>` tag, is this session's alone;
only the images this replay built lose their tags afterwards (a cache tag keeps the layers for the next).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gha
import jsonschema
import pytest
from conftest import BASE_IMAGE, own_tag
from other_host import build_wheel
from owned import OwnImages

from envrepro.engine import DockerEngine
from envrepro.parity_model import ParityReport

pytestmark = [pytest.mark.integration, pytest.mark.docker]

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = ROOT / "tests" / "support"
NODE_PREFIX = SUPPORT / "node"
REUSABLE = ROOT / ".github" / "workflows" / "parity.yml"
EXAMPLE = ROOT / "examples" / "tiny-model"
CALLER = EXAMPLE / ".github" / "workflows" / "parity.yml"
CI_TAG_PREFIX = "envrepro:ci-"  # the tags the workflow's build job gives its images
CI_CACHE_TAG = "envrepro-test/workflow-replay:cache"  # keeps the replay's layers for the next run


def _unavailable(reason: str) -> None:
    if os.environ.get("ENVREPRO_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"{reason} (ENVREPRO_REQUIRE_INTEGRATION=1)", pytrace=False)
    pytest.skip(reason)


def parse_workflows(*paths: Path) -> dict[Path, dict[str, Any]]:
    """The workflows as JSON, parsed by the `yaml` package through tests/support/actionlint.mjs."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None:
        _unavailable("node is not installed: the workflows cannot be parsed")
    assert node is not None
    if not (NODE_PREFIX / "node_modules" / "yaml").is_dir():
        if npm is None:
            _unavailable(f"npm is not installed and {NODE_PREFIX}/node_modules is missing")
        assert npm is not None
        subprocess.run(
            [npm, "ci", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund"],
            check=True,
            capture_output=True,
        )
    done = subprocess.run(
        [node, str(SUPPORT / "actionlint.mjs"), *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return {Path(entry["path"]): entry["document"] for entry in json.loads(done.stdout)["files"]}


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


# --- the runner's surroundings: a workflow run's cache and artifacts, the actions' stand-ins ---------


class Replay:
    """One workflow run: the called workflow with the example's inputs, and what its actions did."""

    def __init__(self, tmp: Path, base_image: str, envrepro_wheel: Path) -> None:
        documents = parse_workflows(REUSABLE, CALLER)
        self.workflow = documents[REUSABLE]
        (call,) = [
            job
            for job in documents[CALLER]["jobs"].values()
            if str(job.get("uses", "")).split("@")[0].endswith("/.github/workflows/parity.yml")
        ]
        self.caller_with: dict[str, Any] = dict(call.get("with") or {})
        given = self.caller_with | {
            "envrepro-spec": str(envrepro_wheel),  # this checkout, not the release the example names
            "base-image": base_image,  # no registry here: the local debootstrap base, under our own tag
            # A TLS-inspecting proxy's CA, when this machine needs one (the input exists for that).
            "pip-cert": os.environ.get("PIP_CERT", ""),
        }
        self.inputs = gha.workflow_inputs(self.workflow, given)
        self.tmp = tmp
        self.artifacts = tmp / "artifacts"
        self.cache_saved: dict[str, Path] = {}
        self.checkout_overrides: dict[str, Path] = {}  # file in the example -> the file checked out
        # The runner's environment: this machine's, without the virtualenv that runs pytest, so that
        # `envrepro` can only come from the workflow's own install step.
        here = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and not k.startswith("PYTEST")}
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != here)
        self.runner = gha.Runner(
            workflow=self.workflow,
            inputs=self.inputs,
            actions={
                "actions/checkout": self.checkout,
                "actions/setup-python": self.setup_python,
                "actions/cache/restore": self.cache_restore,
                "actions/cache/save": self.cache_save,
                "actions/upload-artifact": self.upload_artifact,
            },
            base_env=env,
            github={"repository": "envrepro-dev/tiny-model", "sha": "0" * 40, "event_name": "pull_request"},
            timeout=3600,
        )

    def run_job(
        self, job_id: str, label: str, needs: Mapping[str, gha.JobRun] | None = None, matrix: Any = None
    ) -> gha.JobRun:
        """A job on a fresh runner: its own workspace and RUNNER_TEMP; the Docker engine is shared."""
        return self.runner.run_job(
            job_id, self.tmp / label / "work", self.tmp / label / "temp", needs, matrix
        )

    def checkout(self, call: gha.ActionCall) -> dict[str, str]:
        assert call.with_.get("persist-credentials") is False
        shutil.copytree(EXAMPLE, call.workspace, dirs_exist_ok=True)
        for name, replacement in self.checkout_overrides.items():
            shutil.copyfile(replacement, call.workspace / name)
        return {}

    def setup_python(self, call: gha.ActionCall) -> dict[str, str]:
        # empty input: the job sets up the snapshot's Python major.minor (the lock resolves with it)
        snapshot = json.loads((EXAMPLE / "envrepro.snapshot.json").read_text(encoding="utf-8"))
        minor = ".".join(snapshot["environment"]["python"]["version"].split(".")[:2])
        assert call.with_["python-version"] == (self.inputs["python-version"] or minor)
        bin_dir = call.runner_temp / "setup-python" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "python").symlink_to(sys.executable)
        call.path.append(str(bin_dir))
        return {"python-version": ".".join(map(str, sys.version_info[:3]))}

    def cache_restore(self, call: gha.ActionCall) -> dict[str, str]:
        assert call.with_["key"], "a cache key is empty"
        return {"cache-hit": "false"}  # the run starts with an empty cache

    def cache_save(self, call: gha.ActionCall) -> dict[str, str]:
        (path,) = str(call.with_["path"]).split()
        saved = call.workspace / path
        assert saved.is_file(), f"actions/cache/save of {path}, which does not exist"
        assert call.with_["key"] not in self.cache_saved, "a cache key is saved twice"
        self.cache_saved[str(call.with_["key"])] = saved
        return {}

    def upload_artifact(self, call: gha.ActionCall) -> dict[str, str]:
        """Collect what actions/upload-artifact would upload (paths are relative to the workspace)."""
        name = str(call.with_["name"])
        target = self.artifacts / name
        assert not target.exists(), f"two uploads of the artifact {name}: the second one fails"
        files: list[Path] = []
        for line in str(call.with_["path"]).splitlines():
            if line.strip():
                path = call.workspace / line.strip()
                files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        files = [f for f in files if f.is_file()]
        if not files:
            assert call.with_.get("if-no-files-found") in ("warn", "ignore"), f"no files for artifact {name}"
            return {}
        root = Path(os.path.commonpath([f.parent for f in files]))
        for file in files:
            (target / file.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target / file.relative_to(root))
        return {"artifact-id": name}


@pytest.fixture(scope="module")
def replay_base(docker_engine: DockerEngine) -> Iterator[str]:
    """The debootstrap base under this session's own tag: the workflow's build id (and so its image tag)
    depends on the base-image input, so another run's replay never builds, finds or removes ours."""
    tag = own_tag("envrepro-test/python", "3.11-bookworm")
    docker_engine.tag_image(BASE_IMAGE, tag)
    try:
        yield tag
    finally:
        docker_engine.delete_image(tag)  # untags: BASE_IMAGE still names the image


@pytest.fixture(scope="module")
def replay(replay_base: str, tmp_path_factory: pytest.TempPathFactory) -> Replay:
    if shutil.which("docker") is None:
        _unavailable("the docker client is not installed: the workflow's scripts call it")
    wheel = build_wheel(tmp_path_factory.mktemp("envrepro-wheel"))
    return Replay(tmp_path_factory.mktemp("workflow-run"), replay_base, wheel)


@pytest.fixture(scope="module")
def plan_job(replay: Replay) -> gha.JobRun:
    job = replay.run_job("plan", "plan")
    assert job.status == "success", job.log
    return job


@pytest.fixture(scope="module")
def build_job(replay: Replay, plan_job: gha.JobRun, docker_engine: DockerEngine) -> Iterator[gha.JobRun]:
    own = OwnImages(docker_engine)
    job = replay.run_job("build", "build", needs={"plan": plan_job})
    try:
        if job.outputs.get("tag") and docker_engine.image_exists(job.outputs["tag"]):
            own.built(job.outputs["tag"])
            own.share_cache(job.outputs["tag"], CI_CACHE_TAG)
        yield job
    finally:
        own.remove()  # its `envrepro:ci-` and `envrepro:<digest>` tags; the cache tag keeps the layers


def matrix_entries(plan_job: gha.JobRun) -> list[dict[str, str]]:
    return list(json.loads(plan_job.outputs["matrix"])["include"])


@pytest.fixture(scope="module")
def parity_jobs(replay: Replay, plan_job: gha.JobRun, build_job: gha.JobRun) -> dict[str, gha.JobRun]:
    """One parity job per matrix entry, as the workflow fans them out; model name -> job."""
    assert build_job.status == "success", build_job.log
    needs = {"plan": plan_job, "build": build_job}
    return {
        entry["model"]: replay.run_job("parity", f"parity-{entry['name']}", needs, entry)
        for entry in matrix_entries(plan_job)
    }


TAMPER = """
import sys
import numpy as np
import keras

model = keras.models.load_model(sys.argv[1])
rng = np.random.default_rng(1)
model.set_weights([w + rng.normal(0.0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()])
model.save(sys.argv[2])
"""


@pytest.fixture(scope="module")
def failing_job(
    replay: Replay,
    plan_job: gha.JobRun,
    build_job: gha.JobRun,
    parity_jobs: dict[str, gha.JobRun],
    tf_python: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> gha.JobRun:
    """A second run of the parity job for model.h5, after a commit swapped its weights for others."""
    other = tmp_path_factory.mktemp("other-weights") / "model.h5"
    subprocess.run(
        [str(tf_python), "-c", TAMPER, str(EXAMPLE / "model.h5"), str(other)],
        check=True,
        capture_output=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    replay.checkout_overrides["model.h5"] = other
    try:
        entry = next(e for e in matrix_entries(plan_job) if e["model"] == "model.h5")
        # Its own artifact prefix, as a second call of the workflow in one run must have.
        replay.runner.inputs = replay.inputs | {"artifact-prefix": "swapped-weights"}
        return replay.run_job("parity", "parity-swapped", {"plan": plan_job, "build": build_job}, entry)
    finally:
        replay.checkout_overrides.clear()
        replay.runner.inputs = replay.inputs


# --- what the run shows ------------------------------------------------------------------------------


def test_plan_makes_one_parity_job_per_model_the_example_lists(plan_job: gha.JobRun) -> None:
    assert matrix_entries(plan_job) == [
        {"model": "model.keras", "name": "model.keras"},
        {"model": "model.h5", "name": "model.h5"},
    ]
    assert json.loads(plan_job.outputs["runner"]) == "ubuntu-latest"


def test_build_job_builds_the_pinned_image_on_the_given_base(replay: Replay, build_job: gha.JobRun) -> None:
    assert build_job.status == "success", build_job.log
    assert build_job.step("Install envrepro").outcome == "success"
    assert build_job.step("build").outcome == "success", "the image was not built"
    tag, image_id = build_job.outputs["tag"], build_job.outputs["image-id"]
    assert tag.startswith(CI_TAG_PREFIX)
    assert docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip() == image_id
    # The build artifact: what the image was built from.
    target = replay.inputs["target"]
    built = replay.artifacts / f"{replay.inputs['artifact-prefix']}-{target}-build"
    assert sorted(p.name for p in built.iterdir()) == ["Dockerfile", "requirements.lock.txt"]
    from_line = f"FROM --platform=linux/amd64 {replay.inputs['base-image']}"
    assert from_line in (built / "Dockerfile").read_text(encoding="utf-8")
    assert "--hash=sha256:" in (built / "requirements.lock.txt").read_text(encoding="utf-8")
    # Both the lock and the image went to the cache under the keys the later jobs use; the exported
    # image was then removed from the workspace.
    assert build_job.outputs["image-cached"] == "true"
    assert set(replay.cache_saved) == {build_job.outputs["lock-key"], build_job.outputs["image-key"]}
    assert not (build_job.workspace / ".envrepro-ci").exists()


@pytest.mark.parametrize("model", ["model.keras", "model.h5"])
def test_each_model_passes_on_the_built_image_with_summary_and_artifacts(
    replay: Replay, build_job: gha.JobRun, parity_jobs: dict[str, gha.JobRun], model: str
) -> None:
    job = parity_jobs[model]
    assert job.status == "success", job.log
    assert job.step("parity").returncode == 0
    assert job.step("parity").outputs["exit-code"] == "0"
    assert not job.annotations("error"), job.annotations("error")
    # It tested the build job's image, not a rebuild.
    assert job.step("find").outputs.get("local") == "true"
    assert job.step("envrepro build").outcome == "skipped"

    artifact = replay.artifacts / f"{replay.inputs['artifact-prefix']}-{replay.inputs['target']}-{model}"
    assert sorted(p.name for p in artifact.iterdir()) == ["parity.json", "parity.md", "parity.xml"]
    markdown = (artifact / "parity.md").read_text(encoding="utf-8")
    assert job.summary == markdown, "the job summary is not the parity report"
    assert markdown.startswith(f"## ✅ envrepro parity: `{model}`")
    assert "**PASS: " in markdown

    raw = json.loads((artifact / "parity.json").read_text(encoding="utf-8"))
    jsonschema.validate(raw, ParityReport.model_json_schema())
    report = ParityReport.model_validate(raw)
    assert report.passed
    assert (report.model, report.image) == (model, build_job.outputs["tag"])

    suite = ET.parse(artifact / "parity.xml").getroot()
    cases = suite.findall(".//testcase")
    assert len(cases) >= 2, "one test case per output plus the fingerprint"
    assert not suite.findall(".//failure") and not suite.findall(".//error")


def test_other_weights_fail_the_job_with_an_annotation_a_fail_summary_and_the_reports(
    replay: Replay, failing_job: gha.JobRun
) -> None:
    job = failing_job
    assert job.status == "failure"
    parity = job.step("parity")
    assert (parity.returncode, parity.outputs["exit-code"]) == (1, "1"), job.log
    (error,) = job.annotations("error")
    assert error.startswith("::error title=envrepro parity failed::model.h5 computes differently")
    # The summary and the upload run although the parity step failed.
    assert job.step("Write the report to the job summary").outcome == "success"
    assert job.summary.startswith("## ❌ envrepro parity: `model.h5`")
    assert "**FAIL: " in job.summary

    artifact = replay.artifacts / f"swapped-weights-{replay.inputs['target']}-model.h5"
    assert (artifact / "parity.md").read_text(encoding="utf-8") == job.summary
    report = ParityReport.model_validate_json((artifact / "parity.json").read_text(encoding="utf-8"))
    assert not report.passed
    assert any(f.what == "weights" and not f.same for f in report.fingerprints), report.fingerprints
    assert ET.parse(artifact / "parity.xml").getroot().findall(".//failure")


def test_push_job_is_skipped_without_push(replay: Replay, plan_job: gha.JobRun) -> None:
    assert replay.inputs["push"] is False
    assert replay.run_job("push", "push", needs={"plan": plan_job}).status == "skipped"


def test_a_model_that_is_not_there_fails_the_job_with_exit_2_and_a_summary_saying_so(
    replay: Replay, plan_job: gha.JobRun, build_job: gha.JobRun
) -> None:
    replay.runner.inputs = replay.inputs | {"artifact-prefix": "missing-model"}
    try:
        entry = {"model": "models/missing.h5", "name": "models-missing.h5"}
        job = replay.run_job("parity", "parity-missing", {"plan": plan_job, "build": build_job}, entry)
    finally:
        replay.runner.inputs = replay.inputs
    assert job.status == "failure"
    assert job.step("parity").returncode == 2
    (error,) = job.annotations("error")
    assert error.startswith("::error title=envrepro parity: no model::models/missing.h5 not found")
    assert job.summary.startswith("### envrepro parity: `models/missing.h5`\n\nNo report")
    assert "(exit code 2)" in job.summary
    assert not (replay.artifacts / f"missing-model-{replay.inputs['target']}-models-missing.h5").exists()
