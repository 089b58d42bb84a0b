"""Datasets feeding the contract: CARLA Garage routes, OpenScene/NAVSIM logs, synthetic two-domain data."""
