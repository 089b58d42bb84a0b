# Source me: keeps ROS 2 discovery on this machine (tests, CI, benchmarks, the demo).
# Real deployments keep their normal discovery and do not source this file.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST   # Jazzy and newer
export ROS_LOCALHOST_ONLY=1                      # Humble
export ROS_LOG_DIR=${ROS_LOG_DIR:-${TMPDIR:-/tmp}/min2real-ros-logs}
# A per-run domain so parallel runs on one machine never see each other's topics.
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( ($$ % 100) + 1 ))}
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
