"""Thin rclpy nodes over min2real.runtime: parameters, QoS, message conversion, publishing."""
