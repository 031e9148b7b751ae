"""Local stand-ins for the model containers: they exercise the pipeline, not a model."""

from .sagemaker_transform import ENGINE_LABEL, SageMakerEngineHook, install_sagemaker_engine

__all__ = ["ENGINE_LABEL", "SageMakerEngineHook", "install_sagemaker_engine"]
