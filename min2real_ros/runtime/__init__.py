"""ROS-free runtime: inference backends behind one interface, contract pre/post-processing,
message-buffer conversions and the PID controller. Never imports rclpy or min2real.training;
the TensorRT and ONNX Runtime paths never import torch."""
