"""Probe entry point: `python main.py --out record.json [...]`, run by the target interpreter.

It writes one JSON record: the environment, and for each --model its fingerprint and a reference .npz.
A model that fails to load is recorded with its error; the environment record is never lost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from typing import Callable

PROBE_VERSION = 1
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Siblings are imported by their bare names: this file runs as a script in the target interpreter.
import envprobe  # type: ignore[import-not-found]  # noqa: E402
import redact  # type: ignore[import-not-found]  # noqa: E402


def _parse(argv: "list[str]") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="envrepro-probe")
    parser.add_argument("--out", required=True)
    parser.add_argument("--env-names", default="", help="comma-separated numerics-relevant variables")
    parser.add_argument("--no-tensorflow", action="store_true", help="do not import TensorFlow")
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument(
        "--model-name", action="append", default=[], help="how the user named each --model (for messages)"
    )
    parser.add_argument("--inputs", default=None, help="an .npz of inputs used for every model")
    parser.add_argument("--ref-dir", default=None, help="where model-N.npz files are written")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--custom-objects", default=None)
    parser.add_argument("--unsafe-deserialization", action="store_true")
    parser.add_argument("--outputs-only", action="store_true", help="do not copy the inputs into the .npz")
    parser.add_argument("--preprocess", default=None, help="MODULE:FUNCTION or FILE.py:FUNCTION")
    parser.add_argument("--raw", default=None, help="an .npz of raw samples for --preprocess")
    parser.add_argument(
        "--args-from", default=None, help="after the environment, wait for DIR/go, then add DIR/args.json"
    )
    parser.add_argument("--args-timeout", type=float, default=600.0, help="seconds to wait for DIR/go")
    return parser.parse_args(argv)


def _arguments_sent(folder: str, timeout_s: float) -> "list[str]":
    """The arguments the host sends once it has checked its inputs (runner.launched_probe): the files
    before `go` in its archive are whole when `go` exists."""
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(os.path.join(folder, "go")):
        if time.monotonic() > deadline:
            raise SystemExit("envrepro-probe: no arguments came within %g s" % timeout_s)
        time.sleep(0.005)
    with open(os.path.join(folder, "args.json"), encoding="utf-8") as handle:
        sent = json.load(handle)
    if not isinstance(sent, list) or not all(isinstance(arg, str) for arg in sent):
        raise SystemExit("envrepro-probe: args.json is not a list of strings")
    return sent


def collect_environment(args: argparse.Namespace) -> "dict[str, object]":
    """The environment record. Its standard-library part (distributions, Python, OS, CPU, GPU: files and
    metadata only, ~0.3 s) is taken in a forked child while this process imports TensorFlow, which takes
    seconds on one CPU; where there is no fork, or the child fails, it is taken here after all."""
    waited = _in_child(lambda: _stdlib_environment(args))
    import tfprobe  # type: ignore[import-not-found]

    tensorflow = None if args.no_tensorflow else tfprobe.collect_tensorflow()
    env = waited() or _stdlib_environment(args)
    env["tensorflow"] = tensorflow
    return env


def _stdlib_environment(args: argparse.Namespace) -> "dict[str, object]":
    import gpu  # type: ignore[import-not-found]

    names = [name for name in args.env_names.split(",") if name]
    return {
        "python": envprobe.collect_python(),
        "os": envprobe.collect_os(),
        "cpu": envprobe.collect_cpu(),
        "distributions": envprobe.collect_distributions(),
        "env": envprobe.collect_env(names),
        "gpu": gpu.collect(),
    }


def _in_child(work: "Callable[[], dict[str, object]]") -> "Callable[[], dict[str, object] | None]":
    """Run `work` in a forked child; the returned function waits for its JSON result (None: it failed)."""
    if not hasattr(os, "fork"):
        return lambda: None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no threads exist yet (nothing has imported TensorFlow)
        status = 1
        try:
            os.close(read_end)
            with os.fdopen(write_end, "wb") as handle:
                handle.write(json.dumps(work()).encode("utf-8"))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)

    def wait() -> "dict[str, object] | None":
        with os.fdopen(read_end, "rb") as handle:
            data = handle.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not data:
            return None
        result: "dict[str, object]" = json.loads(data.decode("utf-8"))
        return result

    return wait


def collect_preprocessing(args: argparse.Namespace) -> "dict[str, object]":
    """Run the preprocessing function on the raw samples; its arrays go to preprocess.npz in --ref-dir."""
    import modelprobe  # type: ignore[import-not-found]
    import preprocess  # type: ignore[import-not-found]

    out_npz = os.path.join(args.ref_dir or ".", "preprocess.npz")
    try:
        record: "dict[str, object]" = preprocess.run_preprocess(
            args.preprocess, args.raw, out_npz, save_raw=not args.outputs_only
        )
        record.update({"npz": out_npz, "error": None})
    except modelprobe.ModelProbeError as exc:
        record = {"function": args.preprocess, "error": {"kind": exc.kind, "detail": exc.detail}}
    except Exception as exc:  # noqa: BLE001 - never lose the environment record
        detail = "%s: %s" % (type(exc).__name__, exc)
        record = {"function": args.preprocess, "error": {"kind": "preprocess", "detail": detail}}
    return record


def collect_models(args: argparse.Namespace) -> "list[dict[str, object]]":
    import modelprobe

    shown = [_shown_as(args, index) for index in range(len(args.model))]
    try:
        custom = modelprobe.load_custom_objects(args.custom_objects)
    except modelprobe.ModelProbeError as exc:
        return [{"path": name, "error": {"kind": exc.kind, "detail": exc.detail}} for name in shown]
    records = []
    for index, path in enumerate(args.model):
        record = _collect_model(args, index, path, custom)
        record["path"] = shown[index]
        error = record.get("error")
        if isinstance(error, dict) and path != shown[index]:  # name the model as the user did
            error["detail"] = str(error["detail"]).replace(path, shown[index])
        records.append(record)
    return records


def _shown_as(args: argparse.Namespace, index: int) -> str:
    names = args.model_name
    return str(names[index] if index < len(names) else args.model[index])


def _collect_model(
    args: argparse.Namespace, index: int, path: str, custom: "dict[str, object]"
) -> "dict[str, object]":
    import modelprobe

    out_npz = os.path.join(args.ref_dir or ".", "model-%d.npz" % index)
    safe_mode = not args.unsafe_deserialization
    try:
        record: "dict[str, object]" = modelprobe.probe_model(
            path, out_npz, args.inputs, args.seed, args.samples, custom, safe_mode,
            save_inputs=not args.outputs_only,
        )  # fmt: skip
        record.update({"npz": out_npz, "error": None})
    except modelprobe.ModelProbeError as exc:
        record = {"error": {"kind": exc.kind, "detail": exc.detail}}
    except Exception as exc:  # noqa: BLE001 - never lose the environment record
        detail = "%s: %s" % (type(exc).__name__, exc)
        record = {
            "error": {"kind": "probe_failed", "detail": detail, "traceback": traceback.format_exc(limit=5)}
        }
    return record


def main(argv: "list[str]") -> int:
    args = _parse(argv)
    record = {"probe_version": PROBE_VERSION, "environment": collect_environment(args), "models": []}
    _write(args.out, record)  # environment first: a crash in a model loader cannot lose it
    if args.args_from:  # started early: the environment and TensorFlow's import are done, the rest comes now
        args = _parse(argv + _arguments_sent(args.args_from, args.args_timeout))
    from_preprocessing = False
    if args.preprocess and args.raw:
        pre = collect_preprocessing(args)
        record["preprocessing"] = pre
        _write(args.out, record)
        if not args.inputs and not pre.get("error"):
            # Without --inputs, models are recorded on what the preprocessing produced.
            import preprocess

            args.inputs = preprocess.as_model_inputs(
                str(pre["npz"]), os.path.join(args.ref_dir or ".", "inputs.npz")
            )
            from_preprocessing = True
    if args.model:
        models = collect_models(args)
        if from_preprocessing:
            for model in models:
                if not model.get("error"):
                    model["inputs_from"] = "preprocess:" + args.preprocess
        record["models"] = models
        _write(args.out, record)
    return 0


def _write(path: str, record: "dict[str, object]") -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(redact.redact(record), handle, sort_keys=True)
    os.replace(tmp, path)


def leave(code: int) -> None:
    """Exit without the interpreter's teardown once every result is written (each file closed, renamed into
    place): with TensorFlow loaded, its threads and its modules' finalisers take 0.3-1.4 s here, after the
    last byte the host reads. Standard output and error are flushed first; atexit hooks do not run."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main(sys.argv[1:]))
