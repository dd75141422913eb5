#!/bin/sh
# Runs once, when the PostgreSQL volume is initialised: a role and a
# database for Trillian (with Trillian's schema, if ./schema/postgresql.sql
# was fetched) and for undersigned, which creates its own tables.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE ROLE trillian LOGIN PASSWORD '$TRILLIAN_DB_PASSWORD';
CREATE ROLE undersigned LOGIN PASSWORD '$UNDERSIGNED_DB_PASSWORD';
CREATE DATABASE trillian OWNER trillian;
CREATE DATABASE undersigned OWNER undersigned;
SQL
if [ -s /schema/postgresql.sql ]; then
	psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname trillian \
		-c "SET ROLE trillian" -f /schema/postgresql.sql
fi
