# Source me: the ROS 2 environment of the tests, the demo and the benchmarks.
# - discovery stays on this machine, with a per-run domain so parallel runs never see each other;
# - the shipped Fast DDS profile (config/fastdds_large_data.xml: a 32 MB shared-memory segment)
#   carries 1.5-6 MB camera images between processes without loss. MIN2REAL_DDS_PROFILE=none
#   runs with Fast DDS's defaults (to measure the difference), any other value is a profile path.
# Real deployments keep their normal discovery and point FASTRTPS_DEFAULT_PROFILES_FILE at the
# profile themselves (the launch files do; docs/deployment.md).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST   # Jazzy and newer
export ROS_LOCALHOST_ONLY=1                      # Humble
export ROS_LOG_DIR=${ROS_LOG_DIR:-${TMPDIR:-/tmp}/min2real-ros-logs}
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( ($$ % 100) + 1 ))}
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
_min2real_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_min2real_profile="${MIN2REAL_DDS_PROFILE:-${_min2real_root}/config/fastdds_large_data.xml}"
if [ "${_min2real_profile}" = "none" ]; then
    unset FASTRTPS_DEFAULT_PROFILES_FILE FASTDDS_DEFAULT_PROFILES_FILE
else
    export FASTRTPS_DEFAULT_PROFILES_FILE="${_min2real_profile}"   # Fast DDS 2.x (Humble, Jazzy)
    export FASTDDS_DEFAULT_PROFILES_FILE="${_min2real_profile}"    # Fast DDS 3.x
fi
unset _min2real_root _min2real_profile
