"""min2real_ros: everything that needs rclpy or ROS message types, over the ROS-free `min2real`.

`conversions` turns ROS messages into numpy views and back; `nodes` are the thin rclpy nodes
(driver, controller); `replay` plays rosbag2 bags through them and records what they publish.
Nothing in `min2real` imports this package.
"""
