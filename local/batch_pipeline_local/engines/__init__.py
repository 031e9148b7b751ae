"""Local stand-ins for the model containers: they exercise the pipeline, not a model."""

from batch_pipeline_local.engines.bedrock_batch import (
    BedrockBatchEmulator,
    active_bedrock_emulator,
    install_bedrock_engine,
)
from batch_pipeline_local.engines.sagemaker_transform import ENGINE_LABEL, SageMakerEngineHook, install_sagemaker_engine

__all__ = [
    "ENGINE_LABEL",
    "BedrockBatchEmulator",
    "SageMakerEngineHook",
    "active_bedrock_emulator",
    "install_bedrock_engine",
    "install_sagemaker_engine",
]
