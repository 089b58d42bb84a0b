"""min2real_ros: the online side. `runtime` is ROS-free (backends, pre/post-processing,
controller); `nodes` are thin rclpy nodes over it."""
