#!/usr/bin/env bash
# Rebuild migrations/0001_initial.sql from sql/. Only for the unreleased first schema:
# once 0.1.0 is tagged, 0001 is frozen and every change gets a new numbered migration.
set -euo pipefail
cd "$(dirname "$0")/.."
{
    printf -- "-- 0001_initial: the first schema, as in sql/ at release 0.1.0.\n"
    printf -- "-- Generated from sql/*.sql in name order; later changes get their own numbered file.\n"
    printf -- "SET LOCAL lock_timeout = '5s';\n\n"
    for f in sql/*.sql; do
        printf -- "-- ===== %s =====\n" "$f"
        cat "$f"
        printf "\n"
    done
} > migrations/0001_initial.sql
