"""min2real.models: the Min2Real network (torch + timm): V2R adapter, frozen DINOv2 extractor,
LiDAR BEV encoder, fusion, waypoint and steering heads, the domain discriminator behind the
gradient reversal layer, named variants, checkpoint reading and artifact metadata.

The input/output contract it implements is `min2real.contract` (numpy only).
"""
