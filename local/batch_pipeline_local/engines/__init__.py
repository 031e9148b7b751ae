"""Local stand-ins for the model containers: they exercise the pipeline, not a model."""

from .bedrock_batch import BedrockBatchEmulator, active_bedrock_emulator, install_bedrock_engine
from .sagemaker_transform import ENGINE_LABEL, SageMakerEngineHook, install_sagemaker_engine

__all__ = [
    "ENGINE_LABEL",
    "BedrockBatchEmulator",
    "SageMakerEngineHook",
    "active_bedrock_emulator",
    "install_bedrock_engine",
    "install_sagemaker_engine",
]
