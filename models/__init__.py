"""min2real.models: the input/output contract (numpy only) and the Min2Real network (torch + timm).

Import `min2real.models.contract` without pulling in torch; the network lives in submodules.
"""
