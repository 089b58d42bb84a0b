"""Evaluation: metrics shared with training, the open-loop report, and the closed-loop judge."""
