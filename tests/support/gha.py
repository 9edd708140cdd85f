"""A small stand-in for the GitHub Actions runner, for tests that replay a workflow on this machine.

It runs a parsed workflow's jobs the way the runner does: `${{ }}` expressions in `if:`, `env:`, `with:`,
`working-directory:` and job outputs are evaluated against the same contexts (inputs, secrets, steps,
needs, matrix, runner, github); each `run:` script goes to `bash --noprofile --norc -eo pipefail FILE`
with GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and GITHUB_STEP_SUMMARY files; a step without a status
function in its `if:` runs only while the job succeeds. Steps that `uses:` an action are handed to a
Python stand-in the test supplies (checkout copies a directory, upload-artifact collects files...), so
what is replayed for real is every script the workflow runs, in its order, with its values.

Only the expression syntax that workflows use is implemented (literals, contexts, `.`/`[]`, `!`, `==`,
`!=`, `<`, `>`, `&&`, `||`, parentheses and the common functions), with GitHub's loose comparison rules.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUS_FUNCTIONS = re.compile(r"\b(success|failure|always|cancelled)\s*\(", re.IGNORECASE)
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|0x[0-9a-fA-F]+)"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[()!<>.,\[\]*])|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)


# --- expressions ---------------------------------------------------------------------------------------


def _tokens(text: str) -> list[tuple[str, str]]:
    found, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"cannot parse expression at {text[pos:]!r}")
        kind = match.lastgroup or ""
        found.append((kind, match[kind]))
        pos = match.end()
    return found


def _number(value: Any) -> float:
    """GitHub's coercion to a number, for comparisons of values of different types."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        try:
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        except ValueError:
            return math.nan
    return math.nan


def truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2)
    return str(value)


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    if type(left) is type(right) and not isinstance(left, (int, float)):
        return bool(left == right)
    return _number(left) == _number(right)


def _order(op: str, left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        a, b = left.lower(), right.lower()
    else:
        a, b = _number(left), _number(right)  # type: ignore[assignment]
    return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]


def _index(container: Any, key: Any) -> Any:
    if isinstance(container, Mapping):
        if key in container:
            return container[key]
        lowered = {str(k).lower(): v for k, v in container.items()}
        return lowered.get(str(key).lower())
    if isinstance(container, list) and isinstance(key, (int, float)) and 0 <= int(key) < len(container):
        return container[int(key)]
    return None


class _Parser:
    def __init__(self, text: str, contexts: Mapping[str, Any], functions: Mapping[str, Callable[..., Any]]):
        self.tokens = _tokens(text)
        self.pos = 0
        self.contexts = contexts
        self.functions = functions
        self.skipping = 0  # > 0 while parsing the side of && / || that is not evaluated

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ValueError("unexpected end of expression")
        token = self.tokens[self.pos]
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, found {token[1]!r}")
        self.pos += 1
        return token

    def parse(self) -> Any:
        value = self.or_()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.peek()!r}")
        return value

    def or_(self) -> Any:
        value = self.and_()
        while self.peek() == "||":
            self.take()
            if truthy(value):
                self.rest(self.and_)
            else:
                value = self.and_()
        return value

    def and_(self) -> Any:
        value = self.compare()
        while self.peek() == "&&":
            self.take()
            if truthy(value):
                value = self.compare()
            else:
                self.rest(self.compare)
        return value

    def rest(self, parse: Callable[[], Any]) -> None:
        """Parse the operand that short-circuiting leaves out, without calling anything in it."""
        self.skipping += 1
        try:
            parse()
        finally:
            self.skipping -= 1

    def compare(self) -> Any:
        value = self.unary()
        while self.peek() in ("==", "!=", "<", ">", "<=", ">="):
            op = self.take()[1]
            right = self.unary()
            equality = op in ("==", "!=")
            value = _equal(value, right) == (op == "==") if equality else _order(op, value, right)
        return value

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not truthy(self.unary())
        return self.postfix()

    def postfix(self) -> Any:
        value = self.primary()
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                value = _index(value, self.take()[1])
            else:
                key = self.or_()
                self.take("]")
                value = _index(value, key)
        return value

    def primary(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        if text == "(":
            value = self.or_()
            self.take(")")
            return value
        if kind != "name":
            raise ValueError(f"unexpected {text!r}")
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self.peek() == "(":
            self.take()
            args = []
            while self.peek() != ")":
                args.append(self.or_())
                if self.peek() == ",":
                    self.take()
            self.take(")")
            function = self.functions.get(text.lower())
            if function is None:
                raise ValueError(f"unknown function {text}()")
            return None if self.skipping else function(*args)
        if text not in self.contexts:
            raise ValueError(f"unknown context {text!r}")
        return self.contexts[text]


def _format(template: str, *args: Any) -> str:
    return re.sub(r"\{(\d+)\}", lambda m: to_text(args[int(m[1])]), template)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "startswith": lambda a, b: to_text(a).lower().startswith(to_text(b).lower()),
    "endswith": lambda a, b: to_text(a).lower().endswith(to_text(b).lower()),
    "contains": lambda a, b: (
        any(_equal(x, b) for x in a) if isinstance(a, list) else to_text(b).lower() in to_text(a).lower()
    ),
    "fromjson": lambda text: json.loads(to_text(text)),
    "tojson": lambda value: json.dumps(value, indent=2),
    "format": _format,
    "join": lambda items, sep=",": to_text(sep).join(to_text(i) for i in items),
}


def evaluate(text: str, contexts: Mapping[str, Any], status: str = "success") -> Any:
    """The value of one expression (without the `${{ }}`)."""
    functions = dict(FUNCTIONS)
    functions |= {
        "success": lambda: status == "success",
        "failure": lambda: status == "failure",
        "always": lambda: True,
        "cancelled": lambda: False,
    }
    return _Parser(text, contexts, functions).parse()


def interpolate(value: Any, contexts: Mapping[str, Any]) -> Any:
    """A workflow value with its `${{ }}` replaced: the typed value when it is one whole expression."""
    if not isinstance(value, str):
        return value
    whole = EXPRESSION.fullmatch(value.strip())
    if whole and value.strip().count("${{") == 1:
        return evaluate(whole[1], contexts)
    return EXPRESSION.sub(lambda m: to_text(evaluate(m[1], contexts)), value)


def condition(text: Any, contexts: Mapping[str, Any], status: str) -> bool:
    """Whether an `if:` holds; without a status function it means `success() && (...)`."""
    if text is None or text == "":
        return status == "success"
    if isinstance(text, bool):
        return text and status == "success"
    expression = str(text).strip()
    whole = EXPRESSION.fullmatch(expression)
    if whole:
        expression = whole[1]
    if not STATUS_FUNCTIONS.search(expression):
        expression = f"success() && ({expression})"
    return truthy(evaluate(expression, contexts, status))


# --- jobs and steps ------------------------------------------------------------------------------------


def read_outputs(path: Path) -> dict[str, str]:
    """The `name=value` and `name<<DELIMITER` lines of a GITHUB_OUTPUT (or GITHUB_ENV) file."""
    outputs: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            while i < len(lines) and lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            i += 1
            outputs[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


@dataclass
class ActionCall:
    """What a stand-in for a `uses:` step gets: its `with:` values and the job's directories."""

    action: str
    with_: dict[str, Any]
    workspace: Path
    runner_temp: Path
    job_id: str
    matrix: Mapping[str, Any]
    path: list[str]  # directories the action adds to PATH for the job's later steps


Action = Callable[[ActionCall], Mapping[str, str]]


@dataclass
class StepRun:
    name: str
    id: str | None
    kind: str  # "run" or the action's name
    outcome: str  # success, failure, skipped
    returncode: int | None = None
    log: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    seconds: float = 0.0  # its wall time, shown in the job's log


@dataclass
class JobRun:
    job_id: str
    status: str  # success, failure, skipped
    steps: list[StepRun]
    outputs: dict[str, str]
    workspace: Path
    runner_temp: Path

    @property
    def log(self) -> str:
        return "".join(f"--- {s.name} ({s.outcome}, {s.seconds:.1f} s)\n{s.log}" for s in self.steps)

    @property
    def summary(self) -> str:
        """The job summary: every step's GITHUB_STEP_SUMMARY, in order."""
        return "".join(s.summary for s in self.steps)

    def step(self, name: str) -> StepRun:
        (found,) = [s for s in self.steps if s.name == name or s.id == name]
        return found

    def annotations(self, level: str = "error") -> list[str]:
        return [line for line in self.log.splitlines() if line.startswith(f"::{level}")]


@dataclass
class Runner:
    """Runs the jobs of one parsed workflow with the given inputs, secrets and action stand-ins."""

    workflow: dict[str, Any]
    inputs: dict[str, Any]
    actions: Mapping[str, Action]
    base_env: Mapping[str, str]
    secrets: Mapping[str, str] = field(default_factory=dict)
    github: Mapping[str, Any] = field(default_factory=dict)
    runner: Mapping[str, str] = field(default_factory=lambda: {"os": "Linux", "arch": "X64"})
    timeout: float = 3600

    def run_job(
        self,
        job_id: str,
        workspace: Path,
        runner_temp: Path,
        needs: Mapping[str, JobRun] | None = None,
        matrix: Mapping[str, Any] | None = None,
    ) -> JobRun:
        job = self.workflow["jobs"][job_id]
        workspace.mkdir(parents=True, exist_ok=True)
        runner_temp.mkdir(parents=True, exist_ok=True)
        needs = needs or {}
        matrix = dict(matrix or {})
        contexts: dict[str, Any] = {
            "inputs": self.inputs,
            "secrets": self.secrets,
            "matrix": matrix,
            "needs": {name: {"outputs": run.outputs, "result": run.status} for name, run in needs.items()},
            "runner": {**self.runner, "temp": str(runner_temp), "name": "envrepro-replay"},
            "github": {**self.github, "workspace": str(workspace)},
            "steps": {},
            "env": {},
            "job": {"status": "success"},
        }
        if not condition(job.get("if"), contexts, "success"):
            return JobRun(job_id, "skipped", [], {}, workspace, runner_temp)
        env: dict[str, str] = dict(self.base_env)
        env |= {
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(workspace),
            "RUNNER_TEMP": str(runner_temp),
            "RUNNER_OS": self.runner["os"],
            "RUNNER_ARCH": self.runner["arch"],
            "RUNNER_NAME": "envrepro-replay",
        }
        env |= {f"GITHUB_{k.upper()}": to_text(v) for k, v in self.github.items()}
        for scope in (self.workflow.get("env") or {}, job.get("env") or {}):
            env |= {k: to_text(interpolate(v, contexts)) for k, v in scope.items()}
        defaults = (self.workflow.get("defaults") or {}).get("run", {}) | (job.get("defaults") or {}).get(
            "run", {}
        )
        path: list[str] = []
        status = "success"
        steps: list[StepRun] = []
        for index, step in enumerate(job.get("steps") or []):
            contexts["env"] = env
            contexts["job"] = {"status": status}
            name = str(interpolate(step.get("name") or step.get("uses") or f"step {index + 1}", contexts))
            kind = "run" if "run" in step else str(step["uses"]).split("@", 1)[0]
            started = time.monotonic()
            if not condition(step.get("if"), contexts, status):
                result = StepRun(name, step.get("id"), kind, "skipped")
            elif "run" in step:
                result = self._run(step, index, name, contexts, env, defaults, path, workspace, runner_temp)
            else:
                call = ActionCall(
                    kind,
                    {k: interpolate(v, contexts) for k, v in (step.get("with") or {}).items()},
                    workspace,
                    runner_temp,
                    job_id,
                    matrix,
                    path,
                )
                outputs = dict(self.actions[kind](call))
                result = StepRun(name, step.get("id"), kind, "success", outputs=outputs)
            result.seconds = time.monotonic() - started
            steps.append(result)
            if result.id:
                contexts["steps"][result.id] = {"outputs": result.outputs, "outcome": result.outcome}
            if result.outcome == "failure":
                status = "failure"
        contexts["job"] = {"status": status}
        outputs = {k: to_text(interpolate(v, contexts)) for k, v in (job.get("outputs") or {}).items()}
        return JobRun(job_id, status, steps, outputs, workspace, runner_temp)

    def _run(
        self,
        step: Mapping[str, Any],
        index: int,
        name: str,
        contexts: dict[str, Any],
        env: dict[str, str],
        defaults: Mapping[str, Any],
        path: list[str],
        workspace: Path,
        runner_temp: Path,
    ) -> StepRun:
        shell = step.get("shell") or defaults.get("shell") or "bash"
        if shell != "bash":
            raise NotImplementedError(f"step {name!r}: shell {shell!r} is not replayed, only bash")
        directory = interpolate(step.get("working-directory") or defaults.get("working-directory"), contexts)
        cwd = workspace / directory if directory else workspace
        files = runner_temp / "_runner_file_commands" / str(index)
        files.mkdir(parents=True, exist_ok=True)
        script = runner_temp / f"_step_{index}.sh"
        script.write_text(str(step["run"]), encoding="utf-8")
        step_env = dict(env)
        step_env |= {k: to_text(interpolate(v, contexts)) for k, v in (step.get("env") or {}).items()}
        for variable, file in (
            ("GITHUB_OUTPUT", "output"),
            ("GITHUB_ENV", "env"),
            ("GITHUB_PATH", "path"),
            ("GITHUB_STEP_SUMMARY", "summary"),
        ):
            (files / file).write_text("", encoding="utf-8")
            step_env[variable] = str(files / file)
        step_env["PATH"] = os.pathsep.join([*reversed(path), step_env.get("PATH", "")])
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=cwd,
            env=step_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            timeout=self.timeout,
        )
        path.extend(line for line in (files / "path").read_text(encoding="utf-8").splitlines() if line)
        env |= read_outputs(files / "env")
        return StepRun(
            name,
            step.get("id"),
            "run",
            "success" if done.returncode == 0 else "failure",
            done.returncode,
            done.stdout,
            read_outputs(files / "output"),
            (files / "summary").read_text(encoding="utf-8"),
        )


def workflow_inputs(workflow: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """A called workflow's `inputs` context: its declared defaults, then what the caller gives."""
    declared = workflow["on"]["workflow_call"].get("inputs") or {}
    missing = {name for name, spec in declared.items() if spec.get("required") and name not in given}
    unknown = set(given) - set(declared)
    if missing or unknown:
        raise ValueError(f"inputs missing: {sorted(missing)}; not declared: {sorted(unknown)}")
    values = {
        name: spec.get("default", "" if spec.get("type") == "string" else None)
        for name, spec in declared.items()
    }
    return values | dict(given)
