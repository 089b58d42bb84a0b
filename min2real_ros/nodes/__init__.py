"""Thin rclpy nodes over min2real_ros.runtime."""
