"""The Min2Real network: one model class whose components toggle by `ModelConfig`.

    image (0..255) -> normalise -> [sim samples: V2R adapter | real: resize] -> frozen DINOv2
                                  (or: trainable ResNet at camera size, the TransFuser baseline)
    image tokens + LiDAR BEV tokens + measurements -> fusion -> GRU waypoint head
    image features -> LayerNorm [+ command, target point] -> steering head (linear)
    image features -> GRL -> discriminator

`build_model(config, contract)` is the only constructor; `model.deploy("sim" | "real")` gives the
export module with positional inputs in `contract.INPUT_NAMES` order.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from min2real import contract as contract_lib
from min2real.contract import Contract, ContractError
from min2real.models.adapter import V2RAdapter, resize_to
from min2real.models.config import ModelConfig
from min2real.models.discriminator import DomainDiscriminator
from min2real.models.fusion import MeasurementEncoder, TokenFusion
from min2real.models.grl import grl_coefficient
from min2real.models.heads import SteerHead, TargetSpeedHead, WaypointGRUHead, steer_logits_from_waypoints
from min2real.models.lidar import LidarBevEncoder

OUTPUT_FEATURES = "features"  # (B, D) image features (discriminator / steering head input)
OUTPUT_DOMAIN_LOGITS = "domain_logits"  # (B,) pre-sigmoid, "real" = 1; only with the discriminator
# () mean |adapter(sim image) - resized sim image| in normalised units; only when the adapter ran (training
# and evaluation forward, not the exported graph). loss.adapter_identity weights it ("minimal" transfer).
OUTPUT_ADAPTER_DISTANCE = "adapter_distance"


class Min2RealModel(nn.Module):
    """See the module docstring. Build with `build_model`."""

    def __init__(self, config: ModelConfig, contract: Contract) -> None:
        super().__init__()
        self.config = config
        self.contract = contract
        self.register_buffer("pixel_mean", 255.0 * torch.tensor(contract.mean_rgb).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", 255.0 * torch.tensor(contract.std_rgb).view(1, 3, 1, 1), persistent=False)

        if config.image_backbone == "dinov2":
            from min2real.models.dinov2 import DinoV2Extractor, create_dinov2

            self.image_backbone = DinoV2Extractor(*create_dinov2(config, contract))
        else:
            from min2real.models.resnet_backbone import ResNetImageBackbone

            self.image_backbone = ResNetImageBackbone(config)
        self.adapter = (
            V2RAdapter(
                (contract.camera_height, contract.camera_width),
                (contract.dino_height, contract.dino_width),
                width=config.adapter_width,
                bottleneck=config.adapter_bottleneck,
                skip=config.adapter_skip,
            )
            if config.use_adapter
            else None
        )
        features_dim = self.image_backbone.features_dim
        self.lidar_encoder = (
            LidarBevEncoder(contract.bev_num_channels, contract.bev_size_px, config.lidar_width, config.feature_dim)
            if config.use_lidar
            else None
        )
        self.measurement_encoder = MeasurementEncoder(contract.num_commands, config.feature_dim, config.use_command)
        self.fusion = TokenFusion(
            self.image_backbone.token_dim,
            features_dim,
            self.lidar_encoder.num_tokens if self.lidar_encoder is not None else 0,
            config.feature_dim,
            config.fusion_heads,
        )
        self.waypoint_head = WaypointGRUHead(config.feature_dim, config.gru_hidden, contract.num_waypoints)
        self.steer_head = (
            SteerHead(
                features_dim,
                contract.num_commands if config.steer_use_command else 0,
                config.steer_use_target_point,
            )
            if config.use_steer_head
            else None
        )
        self.target_speed_head = (
            TargetSpeedHead(config.feature_dim, config.gru_hidden) if config.use_target_speed_head else None
        )
        self.discriminator = (
            DomainDiscriminator(features_dim, config.discriminator_hidden) if config.use_discriminator else None
        )
        self._training_progress = 0.0
        # See _image_features; benchmarks/bench_training.py switches it off to time the previous path.
        self.frozen_features_without_grad = True
        # The GRL coefficient as a tensor (not persisted: it follows from the training progress).
        self.register_buffer("_grl_scale", torch.zeros(()), persistent=False)
        self._grl_scale.fill_(self.grl_coefficient)

    # ---- GRL schedule ------------------------------------------------------------------------
    def set_training_progress(self, progress: float) -> None:
        """Training progress p in [0, 1] (e.g. step / total_steps); sets the GRL coefficient."""
        grl_coefficient(self.config.grl_schedule, self.config.grl_coefficient, progress)  # validates p
        self._training_progress = float(progress)
        self._grl_scale.fill_(self.grl_coefficient)

    @property
    def grl_coefficient(self) -> float:
        return grl_coefficient(self.config.grl_schedule, self.config.grl_coefficient, self._training_progress)

    # ---- bookkeeping -------------------------------------------------------------------------
    def weights_provenance(self) -> dict:
        """Where the pretrained parts' weights came from, e.g. {"dinov2": "official:/data/dinov2_vits14_pretrain.pth"}."""
        return {self.config.image_backbone: self.image_backbone.provenance}

    # model.train() recurses into DinoV2Extractor.train, which keeps the frozen ViT in eval mode.

    # ---- forward -----------------------------------------------------------------------------
    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB 0..255 -> normalised with the contract's mean/std (the graph's first op)."""
        return (image - self.pixel_mean) / self.pixel_std

    def _check_inputs(self, image, lidar_bev, target_point, speed, command) -> None:
        batch = image.shape[0]
        expected = self.contract.input_shapes(batch)
        given = dict(zip(contract_lib.INPUT_NAMES, (image, lidar_bev, target_point, speed, command)))
        for name, tensor in given.items():
            if name == contract_lib.INPUT_LIDAR_BEV and self.lidar_encoder is None:
                continue
            if tuple(tensor.shape) != expected[name]:
                raise ContractError(f"model input {name!r} has shape {tuple(tensor.shape)}; expected {expected[name]}")

    def _image_backbone_input(
        self, image_norm: torch.Tensor, sim_index: torch.Tensor | None, all_sim: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the image backbone's input, the adapter's mean absolute distance to the plain resized
        input over the sim samples, a 0-dim tensor, or None when the adapter did not run or in export)."""
        if self.config.image_backbone == "resnet":
            return image_norm, None  # TransFuser baseline: the camera-size image
        if self.adapter is not None and all_sim:
            return self.adapter(image_norm), None
        dino_input = resize_to(image_norm, self.contract.dino_height, self.contract.dino_width)
        distance = None
        if self.adapter is not None and sim_index is not None and sim_index.numel() > 0:
            adapted = self.adapter(image_norm.index_select(0, sim_index))
            distance = (adapted - dino_input.index_select(0, sim_index)).abs().mean()
            dino_input = dino_input.index_copy(0, sim_index, adapted)
        return dino_input, distance

    def _image_features(
        self, backbone_input: torch.Tensor, sim_index: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The image backbone's (tokens, features). The frozen DINOv2 needs a gradient only for the
        samples that came through the trainable adapter: under autograd, a mixed batch runs the
        others (real images, frozen and unaugmented up to here) without it, which saves their
        backward pass through the extractor and changes no value."""
        batch = backbone_input.shape[0]
        if (
            not self.frozen_features_without_grad
            or self.config.image_backbone != "dinov2"
            or self.adapter is None
            or sim_index is None
            or not torch.is_grad_enabled()
            or sim_index.numel() in (0, batch)
        ):
            return self.image_backbone(backbone_input)
        other = torch.ones(batch, dtype=torch.bool, device=backbone_input.device)
        other[sim_index] = False
        other_index = torch.nonzero(other).flatten()
        tokens_sim, features_sim = self.image_backbone(backbone_input.index_select(0, sim_index))
        with torch.no_grad():
            tokens_other, features_other = self.image_backbone(backbone_input.index_select(0, other_index))

        def merge(sim_part: torch.Tensor, other_part: torch.Tensor) -> torch.Tensor:
            merged = sim_part.new_zeros((batch, *sim_part.shape[1:]))
            return merged.index_copy(0, sim_index, sim_part).index_copy(0, other_index, other_part)

        return merge(tokens_sim, tokens_other), merge(features_sim, features_other)

    def _predict(
        self,
        image: torch.Tensor,
        lidar_bev: torch.Tensor,
        target_point: torch.Tensor,
        speed: torch.Tensor,
        command: torch.Tensor,
        sim_index: torch.Tensor | None,
        all_sim: bool,
    ) -> dict[str, torch.Tensor]:
        self._check_inputs(image, lidar_bev, target_point, speed, command)
        image_norm = self.normalize(image)
        backbone_input, adapter_distance = self._image_backbone_input(image_norm, sim_index, all_sim)
        image_tokens, features = self._image_features(backbone_input, sim_index)
        lidar_tokens = self.lidar_encoder(lidar_bev) if self.lidar_encoder is not None else None
        if not self.config.use_speed_input:  # the input stays in the graph (the contract), read as 0 m/s
            speed = speed * 0.0
        measurements = self.measurement_encoder(target_point, speed, command)
        fused = self.fusion(image_tokens, features, lidar_tokens, measurements)
        waypoints = self.waypoint_head(fused, target_point)
        if self.steer_head is not None:
            steer_logits = self.steer_head(features, command, target_point)
        else:
            steer_logits = steer_logits_from_waypoints(waypoints, self.contract)
        outputs = {
            contract_lib.OUTPUT_WAYPOINTS: waypoints,
            contract_lib.OUTPUT_STEER_LOGITS: steer_logits,
            OUTPUT_FEATURES: features,
        }
        if self.target_speed_head is not None:
            outputs[contract_lib.OUTPUT_TARGET_SPEED_LOGITS] = self.target_speed_head(fused, speed)
        if adapter_distance is not None:
            outputs[OUTPUT_ADAPTER_DISTANCE] = adapter_distance
        return outputs

    def output_names(self) -> tuple[str, ...]:
        """The exported graph's outputs: contract.OUTPUT_NAMES, then the optional ones this model has."""
        optional = (contract_lib.OUTPUT_TARGET_SPEED_LOGITS,) if self.target_speed_head is not None else ()
        return (*contract_lib.OUTPUT_NAMES, *optional)

    def output_shapes(self, batch: int = 1) -> dict[str, tuple[int, ...]]:
        """Shapes of `output_names()` (the contract's plus the optional outputs')."""
        shapes = dict(self.contract.output_shapes(batch))
        if self.target_speed_head is not None:
            shapes[contract_lib.OUTPUT_TARGET_SPEED_LOGITS] = (batch, len(contract_lib.TARGET_SPEEDS_MPS))
        return shapes

    def forward(self, inputs: dict[str, torch.Tensor], domain: torch.Tensor) -> dict[str, torch.Tensor]:
        """inputs: contract.INPUT_NAMES -> tensors (image (B, 3, H, W) RGB 0..255 at camera size,
        lidar_bev (B, C, S, S), target_point (B, 2) ego m, speed (B, 1) m/s, command (B, 4));
        domain (B,) int64 DOMAIN_SIM / DOMAIN_REAL (the adapter runs on sim samples only).

        Returns waypoints (B, T, 2) ego REP 103 m, steer_logits (B, 3), features (B, D), with the
        discriminator domain_logits (B,) through the GRL (pre-sigmoid, real = 1) and, when the
        adapter ran on sim samples, adapter_distance () (see OUTPUT_ADAPTER_DISTANCE).
        """
        missing = [name for name in contract_lib.INPUT_NAMES if name not in inputs]
        if self.lidar_encoder is None and contract_lib.INPUT_LIDAR_BEV in missing:
            missing.remove(contract_lib.INPUT_LIDAR_BEV)
        if missing:
            raise ContractError(f"model inputs {missing} are missing; got {sorted(inputs)}")
        image = inputs[contract_lib.INPUT_IMAGE]
        if domain.ndim != 1 or domain.shape[0] != image.shape[0]:
            raise ContractError(
                f"domain has shape {tuple(domain.shape)}; expected ({image.shape[0]},) int64 sim=0 / real=1"
            )
        sim_index = torch.nonzero(domain == contract_lib.DOMAIN_SIM).flatten()
        lidar_bev = inputs.get(contract_lib.INPUT_LIDAR_BEV)
        outputs = self._predict(
            image,
            lidar_bev if lidar_bev is not None else image.new_zeros(0),
            inputs[contract_lib.INPUT_TARGET_POINT],
            inputs[contract_lib.INPUT_SPEED],
            inputs[contract_lib.INPUT_COMMAND],
            sim_index,
            all_sim=False,
        )
        if self.discriminator is not None:
            outputs[OUTPUT_DOMAIN_LOGITS] = self.discriminator(outputs[OUTPUT_FEATURES], self._grl_scale)
        return outputs

    @torch.no_grad()
    def adapt_image(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB 0..255 sim image -> normalised DINOv2 input after the adapter (for plots,
        with `contract.denormalize_image`). Without an adapter: the plain resize."""
        image_norm = self.normalize(image)
        if self.adapter is not None:
            return self.adapter(image_norm)
        return resize_to(image_norm, self.contract.dino_height, self.contract.dino_width)

    # ---- export ------------------------------------------------------------------------------
    def deploy(self, domain: str) -> nn.Module:
        """An eval-mode copy for export: forward(image, lidar_bev, target_point, speed, command)
        -> (waypoints, steer_logits). "sim" applies the V2R adapter, "real" does not. timm fused
        attention is switched off so the graph has plain MatMul + Softmax."""
        if domain not in contract_lib.DOMAINS:
            raise ContractError(f"deploy domain {domain!r} is not supported; expected one of {contract_lib.DOMAINS}")
        return DeployModule(copy.deepcopy(self), apply_adapter=domain == "sim")


class DeployModule(nn.Module):
    """Positional-input wrapper for ONNX export (see `Min2RealModel.deploy`)."""

    def __init__(self, model: Min2RealModel, apply_adapter: bool) -> None:
        super().__init__()
        self.model = model
        self.output_names = model.output_names()
        self.apply_adapter = apply_adapter
        self.domain = "sim" if apply_adapter else "real"
        for module in self.model.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = False
        self.eval()

    def forward(
        self,
        image: torch.Tensor,
        lidar_bev: torch.Tensor,
        target_point: torch.Tensor,
        speed: torch.Tensor,
        command: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        outputs = self.model._predict(
            image, lidar_bev, target_point, speed, command, sim_index=None, all_sim=self.apply_adapter
        )
        return tuple(outputs[name] for name in self.output_names)


def build_model(config: ModelConfig, contract: Contract) -> Min2RealModel:
    """The one constructor of the Min2Real network (random init except the pretrained parts
    named by `config`: DINOv2 per `dinov2_weights`, the ResNet per `resnet_pretrained`)."""
    return Min2RealModel(config, contract)
