"""The domain-shift monitor: is what the camera sees inside what the model was trained on?

Two optional graph outputs (contract.OUTPUT_OOD_SCORE, contract.OUTPUT_DOMAIN_LOGIT), added to an
exported ONNX graph after export (`attach.attach_monitor`), numpy + ONNX only:

    first ViT block's tokens, camera image (`summaries`: token, image and structure summaries)
      -> ood_score:    root mean square over the three parts of their Mahalanobis distance / sqrt(D)
                       under a Ledoit-Wolf shrunk covariance fitted over training frames
                       (`statistics`), each part in units of its median training frame: about 1 there
    features the heads read (the image backbone's pooled (B, D) features, located in the graph)
      -> domain_logit: the training discriminator's MLP (only from a checkpoint that has one)

Thresholds (WARN / ERROR) are calibrated at attach time on held-out in-distribution frames at stated
false-alarm rates and stored in the artifact metadata (`extra["monitor"]`); the runtime side
(smoothing, levels) is min2real.runtime.domain_monitor; `corruptions` and the evaluation's
monitor report measure how well the score separates shifted inputs. It flags unfamiliar inputs;
it does not certify that the car drives safely.
"""
