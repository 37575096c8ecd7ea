# Sourced by the jobs: builds the project if needed and sets CLASSPATH to its classes and dependencies.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# libgomp reads this once at load: without it ND4J's OpenMP threads spin between ops and slow the Java passes.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
JAVA_OPTS="${JAVA_OPTS:--Xmx8g}"

build_if_needed() {
  local stamp="$ROOT/target/classpath.txt"
  if [ ! -f "$stamp" ] || [ -n "$(find "$ROOT/src/main" "$ROOT/pom.xml" -newer "$stamp" -print -quit)" ]; then
    echo "building (mvn package) ..." >&2
    (cd "$ROOT" && mvn -q -B -DskipTests package dependency:build-classpath -Dmdep.outputFile=target/classpath.txt) >&2
  fi
  CLASSPATH="$ROOT/target/classes:$(cat "$stamp")"
  export CLASSPATH
}

run_main() {
  build_if_needed
  # shellcheck disable=SC2086
  exec java $JAVA_OPTS dev.syncbn.cli.Main "$@"
}
