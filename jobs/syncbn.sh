#!/usr/bin/env bash
# usage: jobs/syncbn.sh COMMAND [options]
# Runs any command of the application in this JVM: jobs/syncbn.sh help, jobs/syncbn.sh help --markdown, ...
source "$(dirname "$0")/common.sh"
run_main "$@"
