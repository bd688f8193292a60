#!/bin/sh
# Start one node: take the cluster's shared keys (made once by the "keys" service), then
# run what the command says (serve or worker).
set -eu
mkdir -p "$HYAC_DATA_DIR"
chmod 700 "$HYAC_DATA_DIR"
for file in secrets.key agent.token; do
    install -m 600 "/keys/$file" "$HYAC_DATA_DIR/$file"
done
exec hyac-agent "$@"
