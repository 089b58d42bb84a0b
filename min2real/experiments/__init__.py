"""Experiments that train, deploy and judge many recipes (the layer above training and evaluation).

`synthetic`: the paper's Table I and Fig. 6 on the synthetic two-domain world, closed loop, with
statistics and sim-to-real measures (training/experiment_synthetic.py, docs/experiments.md).
"""
