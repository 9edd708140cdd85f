"""envrepro: snapshot a training environment, rebuild it as a pinned image, prove numerical parity.

The data flow, one stage per module (module -> what it owns -> what it returns):
    introspect     runs the stdlib-only probe/ in the TARGET interpreter  -> the raw, redacted record
    record         the raw record's meaning (reproducibility, models)     -> snapshot.Snapshot
    snapshot       the typed, schema-versioned document; load + validate  -> Snapshot / Environment
    snapshot_file  the JSON and its .ref/ arrays, written as one pair     -> the Snapshot as written
    resolve        base image, Python, platform, CPU/GPU, and why         -> target.Target
    lock           pip-compile for the image's Python and platform        -> target.Lock (pins + hashes)
    render         Jinja2 templates/, a pure function                      -> the Dockerfile's text
    context        the build directory, deterministic                      -> the context (and its tar)
    engine         the Docker engine, the only module that imports docker  -> BuiltImage / RunResult
    parity         the model in the image vs its reference                 -> parity_model.ParityReport
    diff, report   differences between environments; tables/JSON/Markdown  -> text for the user
`build` chains resolve -> lock -> render -> context -> engine; `parity` starts runner's probe in the image,
reads parity_training's side meanwhile, then chains image_run -> compare -> explain (parity_verdict);
`cli` parses arguments, calls one function
per command and maps errors (errors.py, one root) to exit codes: 0 ok, 1 check failed, 2 usage/input.
"""

__version__ = "0.1.0"
