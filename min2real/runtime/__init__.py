"""ROS-free runtime: inference backends behind one interface, the TensorRT engine build and
cache, contract pre/post-processing (policy), frame assembly, the PID controller and the route
planner. Never imports rclpy, torch (except the torch backend, on request) or min2real.training."""
