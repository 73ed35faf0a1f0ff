# Sourced from ~/.bashrc on a cluster's head (cluster/*.yaml setup_commands, the Dockerfile).
#
# `ray submit CLUSTER.yaml sweeps/SPEC.yaml [-- ARGS]` uploads the spec to ~/SPEC.yaml and runs
# `python ~/SPEC.yaml ARGS` on the head, in a login shell that sources ~/.bashrc. This function
# turns exactly that into `iql-sweep run ~/SPEC.yaml --address auto --output $IQL_SWEEP_OUTPUT
# ARGS` (python -m iql_sweep.submit); any other python call is left alone.
python() {
    case "${1:-}" in
        *.yaml | *.yml) command python -m iql_sweep.submit "$@" ;;
        *) command python "$@" ;;
    esac
}
