#!/usr/bin/env bash
# Starts the servers Eventline's tests use and exports where they are. Sourced by
# scripts/test.sh; safe to run again (servers already up are left alone).
#
# Nothing is needed yet beyond SQLite, which is compiled into the binary.
true
