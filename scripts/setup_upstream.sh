#!/usr/bin/env bash
# Install the upstream sources of ../shared/third_party (README and SHA256SUMS there) into .venv, so
# the tests run min2real against the real thing: `ros2 launch` / `ros2 run` (launch, launch_ros,
# ros2cli), the message packages built from source with the rosidl/ament toolchain wheels
# (composition_interfaces, ackermann_msgs, carla_msgs, carla_ackermann_msgs), the CARLA ROS
# bridge's Python packages (converter nodes, launch files), CARLA Garage's leaderboard and
# scenario_runner, NAVSIM v2.2 and nuplan-devkit v1.2. Their PyPI dependencies (toolchain wheels,
# cmake, ninja, colcon, simple-pid, carla, py_trees, navsim's) are pinned in requirements/lock.txt.
#
# Everything goes into the venv's own prefix (where the ROS wheels live: lib/ is on the library
# path, share/ is the ament index with AMENT_PREFIX_PATH=.venv), so `rm -rf .venv` undoes it.
# A stamp holds the hash of the archives, this script and the lock: a second run takes about a second.
# Without the sources (a user's machine) it says so and exits 0; the tests that need them then skip
# with that reason, except under MIN2REAL_CI=1 (.ci/run), where they fail (test/upstream.py).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
VENV=${VENV:-.venv}
THIRD_PARTY=${MIN2REAL_THIRD_PARTY:-../shared/third_party}
venv=$(cd "$VENV" && pwd)
stamp_file="$venv/.min2real-upstream-stamp"

if [[ ! -f "$THIRD_PARTY/SHA256SUMS" ]]; then
  if [[ "${MIN2REAL_CI:-}" == "1" ]]; then
    echo "setup_upstream: $THIRD_PARTY/SHA256SUMS not found, and CI must run against the upstream sources" >&2
    exit 1
  fi
  echo "setup_upstream: $THIRD_PARTY/SHA256SUMS not found: the upstream tools are not installed" \
    "(tests that need them skip; set MIN2REAL_THIRD_PARTY to the folder that has them)"
  exit 0
fi
third_party=$(cd "$THIRD_PARTY" && pwd)
stamp_value=$(cat "$third_party/SHA256SUMS" scripts/setup_upstream.sh requirements/lock.txt | sha256sum | cut -d' ' -f1)
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp_value" ]]; then
  exit 0
fi
started=$SECONDS
echo "setup_upstream: installing the upstream sources of $third_party into $VENV (first run: several minutes on 2 cores)"
(cd "$third_party" && sha256sum --check --quiet SHA256SUMS)

src="$venv/upstream/src"
build="$venv/upstream/build"
rm -rf "$venv/upstream"
mkdir -p "$src" "$build"
for archive in "$third_party"/*.tar.gz; do
  tar -xzf "$archive" -C "$src"
done
python="$venv/bin/python"
pip_install() {
  "$python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation "$@" \
    2> >(grep -v "^WARNING: Location\|DEPRECATION\|^  \|^$" >&2)
}

# 1. Pure Python: ros2 launch and the ros2 command, NAVSIM and nuplan-devkit.
pip_install "$src"/launch/{launch,launch_xml,launch_yaml} \
  "$src"/launch_ros/{launch_ros,ros2launch} \
  "$src"/ros2cli/{ros2cli,ros2run,ros2pkg,ros2node,ros2topic,ros2param,ros2lifecycle,ros2service}
# Editable, as their READMEs install them: the Hydra configs stay beside the code (package data).
pip_install -e "$src/nuplan-devkit" -e "$src/navsim"
built=(launch launch_ros ros2cli ros2launch ros2run ros2lifecycle navsim nuplan)
echo "setup_upstream: Python packages installed ($((SECONDS - started)) s)"

# 2. Message packages with the rosidl toolchain wheels. The wheels' exported CMake files name the
#    Python and numpy include directories of the machine that built them: point them at ours.
#    Unoptimised (-O0): the generated type support compiles in about half the time, and the tests
#    exchange a few small messages.
py_include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_include=$("$python" -c 'import numpy; print(numpy.get_include())')
{ grep -rl "/opt/python/cp311-cp311" "$venv/share" --include="*.cmake" || true; } | while read -r file; do
  sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$py_include#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_include#g" "$file"
done
# carla_msgs asks for ros_environment, which only exports ROS_VERSION / ROS_DISTRO (set here).
mkdir -p "$build/ros_environment"
echo "# ROS_VERSION and ROS_DISTRO come from the environment (scripts/setup_upstream.sh)" \
  > "$build/ros_environment/ros_environmentConfig.cmake"
export ROS_VERSION=2 ROS_DISTRO=jazzy ROS_PYTHON_VERSION=3
export PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
for package in rcl_interfaces/composition_interfaces ackermann_msgs carla_msgs ros-bridge/carla_ackermann_msgs; do
  name=$(basename "$package")
  cmake -S "$src/$package" -B "$build/$name" -G Ninja -Wno-unused-cli -Wno-deprecated -Wno-author --log-level=ERROR \
    -DCMAKE_BUILD_TYPE=None -DCMAKE_C_FLAGS=-O0 -DCMAKE_CXX_FLAGS=-O0 -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$venv" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
    -DPython3_EXECUTABLE="$python" -DPYTHON_EXECUTABLE="$python" \
    -Dros_environment_DIR="$build/ros_environment" > "$build/$name.log"
  cmake --build "$build/$name" -j 2 >> "$build/$name.log"
  cmake --install "$build/$name" >> "$build/$name.log"
  built+=("$name")
  echo "setup_upstream: built $name ($((SECONDS - started)) s)"
done

# 3. The CARLA ROS bridge's Python packages as colcon installs them (share/<pkg>, lib/<pkg>/<exe>).
for name in ros_compatibility carla_common carla_twist_to_control carla_ackermann_control carla_ros_bridge \
  carla_spawn_objects carla_waypoint_publisher; do
  (cd "$src/ros-bridge/$name" && "$python" setup.py --quiet install --prefix "$venv" \
    --single-version-externally-managed --record "$build/$name.record" > "$build/$name.log" 2>&1) ||
    { cat "$build/$name.log" >&2; exit 1; }
  built+=("$name")
done

# 4. CARLA Garage's leaderboard and scenario_runner are not pip packages: put them on sys.path.
site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n' "$src/carla_garage/leaderboard" "$src/carla_garage/scenario_runner" > "$site/min2real-upstream.pth"
built+=(leaderboard srunner)

echo "$stamp_value" > "$stamp_file"
echo "setup_upstream: built ${built[*]} in $((SECONDS - started)) s (sources: $third_party)"
cd "$root"
