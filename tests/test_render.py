"""render(): the Dockerfile per variant (golden files), determinism, hadolint, and templates from the wheel.

Regenerate the golden files after an intended template change with:
    ENVREPRO_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import jinja2
import pytest

from envrepro import snapshot
from envrepro.errors import TemplateNotFoundError, UnsafeValueError
from envrepro.render import dockerfile_quote, render, template_context, templates_dir
from envrepro.resolve import resolve
from envrepro.target import Lock, Target

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).parent / "cases"
GOLDEN = Path(__file__).parent / "golden"
HADOLINT = Path(sys.executable).parent / "hadolint"
LOCK = Lock(text="six==1.17.0 \\\n    --hash=sha256:" + "0" * 64 + "\n", requirements=())
TEST_BASE = "envrepro-test/python:3.11-bookworm"


def target_for(variant: str) -> Target:
    """The Target each golden file is rendered from."""
    case, kwargs = {
        "cpu": ("tf221-cpu-snapshot", {}),
        "gpu-wheels": ("tf221-gpu-snapshot", {}),
        "gpu-cuda-base": ("tf212-gpu-snapshot", {}),
        "custom-base": ("tf221-cpu-snapshot", {"base_image": TEST_BASE, "base_python": "3.11.2"}),
    }[variant]
    return resolve(snapshot.load(CASES / case / "envrepro.lock.json"), **kwargs)  # type: ignore[arg-type]


def dockerfile(target: Target) -> str:
    return dict(render(target, LOCK).files)["Dockerfile"].decode()


VARIANTS = ("cpu", "gpu-wheels", "gpu-cuda-base", "custom-base")


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_dockerfile_matches_its_golden_file(variant: str) -> None:
    text = dockerfile(target_for(variant))
    golden = GOLDEN / f"Dockerfile.{variant}"
    if os.environ.get("ENVREPRO_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("variant", VARIANTS)
def test_golden_dockerfiles_pass_hadolint_with_the_repos_config(variant: str) -> None:
    result = subprocess.run(
        [str(HADOLINT), "--config", str(ROOT / ".hadolint.yaml"), str(GOLDEN / f"Dockerfile.{variant}")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_same_snapshot_renders_byte_identical_files() -> None:
    first = render(target_for("gpu-wheels"), LOCK)
    second = render(target_for("gpu-wheels"), LOCK)
    assert first == second
    assert [name for name, _ in first.files] == ["Dockerfile", "requirements.lock.txt"]
    assert dict(first.files)["requirements.lock.txt"] == LOCK.text.encode()


def test_dockerfile_is_multi_stage_with_hashes_non_root_and_no_pip_config_in_the_final_stage() -> None:
    text = dockerfile(target_for("cpu"))
    builder, final = text.split("\nFROM --platform=linux/amd64 python:3.11.7-slim-bookworm\n")
    assert "FROM --platform=linux/amd64 python:3.11.7-slim-bookworm AS builder" in builder
    assert "--require-hashes" in builder
    assert "--no-cache-dir" in builder
    assert "PIP_CONFIG_FILE=/tmp/envrepro-pip/pip.conf" in builder
    assert "envrepro-pip" not in final
    assert "pip install" not in final
    assert "COPY --from=builder /opt/venv /opt/venv" in final
    assert "USER 10001:10001" in final
    assert "RUN --mount" not in text
    assert "<<" not in text  # no heredocs: the legacy builder is used


def test_dockerfile_header_labels_and_env_come_from_the_snapshot() -> None:
    target = target_for("gpu-wheels")
    text = dockerfile(target)
    digest = dict(target.labels)["io.envrepro.snapshot.digest"]
    assert text.startswith(f"# Produced by envrepro from snapshot sha256:{digest}\n")
    assert f'io.envrepro.snapshot.digest="{digest}"' in text
    assert 'TF_ENABLE_ONEDNN_OPTS="0"' in text
    assert "CUDA_VISIBLE_DEVICES" not in text
    assert text.index("COPY --from=builder") < text.index("TF_ENABLE_ONEDNN_OPTS")  # env late: venv cached


def test_cuda_base_variant_installs_python_with_apt_in_both_stages() -> None:
    text = dockerfile(target_for("gpu-cuda-base"))
    base = "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04"
    builder, final = text.split(f"\nFROM --platform=linux/amd64 {base}\n")
    assert "install -y --no-install-recommends python3 python3-venv" in builder
    assert "install -y --no-install-recommends python3 \\" in final
    assert "python3-venv" not in final
    assert final.count("rm -rf /var/lib/apt/lists/*") == 1


def test_env_and_label_values_are_quoted_literally() -> None:
    assert dockerfile_quote('a "b" $HOME \\n') == '"a \\"b\\" \\$HOME \\\\n"'
    target = target_for("cpu")
    odd = Target(**{**target.__dict__, "env": (("TF_XLA_FLAGS", "--xla_x=$Y"),)})
    assert 'ENV TF_XLA_FLAGS="--xla_x=\\$Y"' in dockerfile(odd)


def test_a_missing_template_variable_is_an_error_not_an_empty_string(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile.j2").write_text("FROM {{ base_imag }}\n")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(tmp_path), undefined=jinja2.StrictUndefined)
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("Dockerfile.j2").render(template_context(target_for("cpu")))


def test_templates_come_from_the_package_first_then_the_source_checkout(tmp_path: Path) -> None:
    assert templates_dir() == ROOT / "templates"  # source checkout: no envrepro/templates
    installed = tmp_path / "envrepro" / "templates"
    installed.mkdir(parents=True)
    (installed / "Dockerfile.j2").write_text("FROM x\n")
    assert templates_dir((installed, ROOT / "templates")) == installed
    with pytest.raises(TemplateNotFoundError) as info:
        templates_dir((tmp_path / "nowhere",))
    assert "template Dockerfile.j2 not found" in str(info.value)


def _dependency_path(tmp_path: Path) -> Path:
    """A directory with links to envrepro's runtime imports only (not envrepro itself)."""
    shim = tmp_path / "deps"
    shim.mkdir()
    modules = (
        "jinja2",
        "markupsafe",
        "pydantic",
        "pydantic_core",
        "annotated_types",
        "typing_extensions",
        "typing_inspection",
        "packaging",
    )
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (shim / source.name).symlink_to(source)
    return shim


@pytest.mark.integration
def test_the_built_wheel_ships_the_templates_and_renders_from_them(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("envrepro-*.whl")
    assert "envrepro/templates/Dockerfile.j2" in zipfile.ZipFile(wheel).namelist()
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    script = (
        "import sys; from pathlib import Path; import envrepro.render as r; "
        "from envrepro import snapshot; from envrepro.resolve import resolve; "
        "from envrepro.target import Lock; "
        "assert r.templates_dir() == Path(r.__file__).parent / 'templates', r.templates_dir(); "
        "snap = snapshot.load(Path(sys.argv[1])); "
        "files = dict(r.render(resolve(snap), Lock(text=sys.argv[2], requirements=())).files); "
        "sys.stdout.write(str(r.templates_dir()) + '\\n' + files['Dockerfile'].decode())"
    )
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            script,
            str(CASES / "tf221-cpu-snapshot" / "envrepro.lock.json"),
            LOCK.text,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(_dependency_path(tmp_path)), "PATH": os.environ.get("PATH", "")},
    )
    where, _, text = result.stdout.partition("\n")
    assert where.startswith(str(venv))
    assert text == (GOLDEN / "Dockerfile.cpu").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "reference",
    [
        "python:3.11.7-slim-bookworm",
        "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04",
        TEST_BASE,
        "localhost:5000/team/img:v1@sha256:" + "a" * 64,
        "registry.example.com/a__b/c-d",
    ],
)
def test_a_base_image_reference_is_written_as_is(reference: str) -> None:
    target = target_for("cpu")
    text = dockerfile(Target(**{**target.__dict__, "base_image": reference}))
    assert f"FROM --platform=linux/amd64 {reference} AS builder\n" in text
    assert f"\nFROM --platform=linux/amd64 {reference}\n" in text


@pytest.mark.parametrize(
    "reference",
    ["library/UPPER", "UPPER CASE", "python:3.11\nRUN id", "-flag", "a:b:c", "", "x" * 300, "img@sha256:12"],
)
def test_a_base_image_that_is_not_a_reference_is_refused(reference: str) -> None:
    target = target_for("cpu")
    with pytest.raises(UnsafeValueError, match="must be a Docker image reference"):
        dockerfile(Target(**{**target.__dict__, "base_image": reference}))


def test_dockerfile_strings_escape_every_control_and_non_ascii_character() -> None:
    quoted = dockerfile_quote('a\nb\r\tc\u2028d\x85e\x00f"$\\é')
    assert quoted == '"a\\nb\\r\\tc\\u2028d\\u0085e\\u0000f\\"\\$\\\\\\u00e9"'
    assert quoted.isascii() and quoted.isprintable()
