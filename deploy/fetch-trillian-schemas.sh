#!/usr/bin/env bash
# Copies Trillian's database schemas, from the Trillian module pinned in
# go.mod, to where the compose file and the Kubernetes manifests load them:
# compose/schema/{postgresql,mysql}.sql and kubernetes/*/schema/. They are
# Trillian's files, fetched rather than kept in this repository.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$(cd "$here/.." && go mod download github.com/google/trillian && go list -m -f '{{.Dir}}' github.com/google/trillian)
for target in "$here/compose/schema" "$here/kubernetes/base/schema" "$here/kubernetes/mysql/schema"; do
	mkdir -p "$target"
	cp "$dir/storage/postgresql/schema/storage.sql" "$target/postgresql.sql"
	cp "$dir/storage/mysql/schema/storage.sql" "$target/mysql.sql"
	chmod 644 "$target"/*.sql
done
echo "Trillian's schemas are in $here/{compose,kubernetes/base,kubernetes/mysql}/schema/" >&2
