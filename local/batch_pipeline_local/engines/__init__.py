"""Local stand-ins for the model containers and the batch services: they exercise the pipeline, not a model.

- sagemaker_transform.py (jobs) and sagemaker_model.py (the text2text and zero-shot answers): SageMaker Batch
  Transform with a JumpStart container.
- bedrock_batch.py (the API) with bedrock_routes.py, service_model.py, bedrock_model.py, bedrock_jobs.py and
  bedrock_job_data.py: Bedrock batch inference, InvokeModel and Converse.
- stand_in.py: the label and marker object every stand-in output carries.
"""
