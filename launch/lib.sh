# Helpers shared by the launch scripts (sourced, not run).

# workdir_from_args ARGS...: prints the trainer's --workdir (given as --workdir=DIR or
# --workdir DIR; the last one wins), or nothing.
workdir_from_args() {
  local workdir="" arg previous=""
  for arg in "$@"; do
    case "$arg" in
      --workdir=*) workdir="${arg#--workdir=}" ;;
      *) if [ "$previous" = --workdir ]; then workdir="$arg"; fi ;;
    esac
    previous="$arg"
  done
  printf '%s' "$workdir"
}

# cache_flag WORKDIR ARGS...: prints the flag that puts the XLA compilation cache on the shared
# workdir (every process and every restart reuses it), or nothing when ARGS set one already.
cache_flag() {
  local workdir="$1"
  shift
  case " $* " in
    *--config.compilation_cache_dir*) ;;
    *) printf '%s' "--config.compilation_cache_dir=$workdir/compilation_cache" ;;
  esac
}
