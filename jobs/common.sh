# Sourced by the jobs: builds the project if needed and sets CLASSPATH, JAR and JAVA_OPTS.
set -euo pipefail
# --help or -h anywhere: print the calling script's header comment (its usage) and exit, before building or
# starting anything. Scripts that run one command of the program leave --help to it (its own options).
help_if_asked() {
  local a
  for a in "$@"; do
    case "$a" in -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac
  done
}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# libgomp reads this once at load: without it ND4J's OpenMP threads spin between ops and slow the Java passes.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# The JVM flags Spark needs on Java 17: one list, kept in pom.xml (spark.jvm.options).
SPARK_JVM_OPTIONS="$(sed -n 's:.*<spark.jvm.options>\(.*\)</spark.jvm.options>.*:\1:p' "$ROOT/pom.xml")"
JAVA_OPTS="${JAVA_OPTS:--Xmx8g} $SPARK_JVM_OPTIONS -Dlog4j2.configurationFile=$ROOT/conf/log4j2.properties"
JAR="$ROOT/target/syncbn-0.1.0-SNAPSHOT.jar"
CLUSTER_JAR="$ROOT/target/syncbn-cluster.jar"
# spark-submit's properties file: conf/local.properties unless told otherwise (conf/cluster.properties for a cluster)
SPARK_PROPERTIES="${SYNCBN_SPARK_PROPERTIES:-$ROOT/conf/local.properties}"

build_if_needed() {
  local stamp="$ROOT/target/classpath.txt"
  if [ ! -f "$stamp" ] || [ ! -f "$JAR" ] || [ -n "$(find "$ROOT/src/main" "$ROOT/pom.xml" -newer "$stamp" -print -quit)" ]; then
    echo "building (mvn package) ..." >&2
    (cd "$ROOT" && mvn -q -B -DskipTests package dependency:build-classpath -Dmdep.outputFile=target/classpath.txt) >&2
    touch "$stamp"
  fi
  CLASSPATH="$ROOT/target/classes:$(cat "$stamp")"
  export CLASSPATH
}

# Runs a command of the application in this JVM (no Spark cluster involved unless the command starts one).
run_main() {
  # These read prepared data with Spark in local mode at most (see submit_class on SPARK_LOCAL_IP).
  case "${1:-}" in train-local|bench) export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}" ;; esac
  build_if_needed
  # shellcheck disable=SC2086
  exec java $JAVA_OPTS dev.syncbn.cli.Main "$@"
}

# Runs a command through spark-submit: $SPARK_HOME's if set, else Spark's own SparkSubmit class on the
# project's resolved class path (no Spark distribution can be downloaded on these machines).
submit_main() {
  submit_class dev.syncbn.cli.Main "$@"
}

# Runs the main class $1 of the application jar through spark-submit, as submit_main does.
submit_class() {
  local main="$1"
  shift
  # Spark properties as spark-submit takes them: --conf key=value (repeatable) goes to spark-submit, the
  # rest to the program; the properties file must exist.
  local spark_conf=() app_args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --conf)
        [ $# -ge 2 ] && [[ "$2" == *=* ]] || { echo "error: --conf takes key=value (a Spark property), got '${2:-}'" >&2; exit 2; }
        spark_conf+=(--conf "$2"); shift 2 ;;
      --conf=*)
        [[ "${1#--conf=}" == *=* ]] || { echo "error: --conf takes key=value (a Spark property), got '${1#--conf=}'" >&2; exit 2; }
        spark_conf+=(--conf "${1#--conf=}"); shift ;;
      *) app_args+=("$1"); shift ;;
    esac
  done
  set -- "${app_args[@]+"${app_args[@]}"}"
  # In local mode the driver and executors share this machine: binding to the loopback address avoids
  # Spark's warning that the hostname resolves to it (and its guess of another interface).
  if [ -z "${SPARK_LOCAL_IP:-}" ] && [[ " $* " != *" --master "* ]] && grep -qE '^spark\.master[[:space:]]+local' "$SPARK_PROPERTIES" 2>/dev/null; then
    export SPARK_LOCAL_IP=127.0.0.1
  fi
  if [ ! -f "$SPARK_PROPERTIES" ]; then
    echo "error: the Spark properties file $SPARK_PROPERTIES does not exist (set by SYNCBN_SPARK_PROPERTIES, default conf/local.properties)" >&2
    exit 2
  fi
  build_if_needed
  if [ -n "${SPARK_HOME:-}" ]; then
    # a real Spark distribution: ship the self-contained application jar (Spark and Hadoop provided)
    if [ ! -f "$CLUSTER_JAR" ] || [ "$CLUSTER_JAR" -ot "$JAR" ]; then
      echo "building the cluster jar (mvn -Pcluster package) ..." >&2
      (cd "$ROOT" && mvn -q -B -Pcluster -DskipTests package) >&2
    fi
    exec "$SPARK_HOME/bin/spark-submit" --properties-file "$SPARK_PROPERTIES" "${spark_conf[@]+"${spark_conf[@]}"}" \
      --driver-java-options "-Dlog4j2.configurationFile=$ROOT/conf/log4j2.properties" \
      --class "$main" "$CLUSTER_JAR" "$@"
  fi
  # shellcheck disable=SC2086
  exec java $JAVA_OPTS org.apache.spark.deploy.SparkSubmit --properties-file "$SPARK_PROPERTIES" "${spark_conf[@]+"${spark_conf[@]}"}" \
    --class "$main" "$JAR" "$@"
}
