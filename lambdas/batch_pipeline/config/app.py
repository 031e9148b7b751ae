"""The one typed model of the app's configuration: pipelines, the model catalog and endpoints.

The same model validates `cdk.json` context at synth time and the compact per-pipeline JSON the
Lambdas receive in their environment, so synth and runtime can never disagree on a field.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONTEXT_KEY = "batch-pipeline"

InputFormat = Literal["jumpstart-text2text", "zero-shot", "bedrock", "prompt", "messages"]
Backend = Literal["sagemaker", "bedrock"]
InvocationType = Literal["InvokeModel", "Converse"]
BedrockFamily = Literal["anthropic", "nova", "titan-text"]

# A system-defined cross-Region inference profile id starts with its geography ("us.amazon.nova-lite-v1:0");
# an application inference profile is named by its ARN.
PROFILE_PREFIX = re.compile(r"^(us|us-gov|eu|apac|jp|au|ca|global)\.")
APPLICATION_PROFILE_ARN = re.compile(
    r"^arn:aws(-[a-z]+)*:bedrock:[a-z0-9-]+:\d{12}:application-inference-profile/[a-z0-9]+$"
)
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")

# A pipeline name is the first key segment of an upload and part of resource names.
PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
# An endpoint key becomes part of a SageMaker endpoint name ([a-zA-Z0-9](-*[a-zA-Z0-9]), at most 63).
ENDPOINT_NAME = re.compile(r"^[a-z0-9](-?[a-z0-9]){0,29}$")


class ConfigError(ValueError):
    """An invalid configuration; the message names every offending key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- prices

# Where a price was read and when: a plain https URL (no spaces) and a calendar date.
PRICE_SOURCE = r"^https://[A-Za-z0-9.-]+\.[A-Za-z]{2,}(/[^\s]*)?$"
INSTANCE_TYPE = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"


def _checked_date(value: str) -> str:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"as_of {value!r} is not a date (YYYY-MM-DD)") from None
    if day.isoformat() != value:
        raise ValueError(f"as_of {value!r} must be written YYYY-MM-DD")
    if day > datetime.now(UTC).date():
        raise ValueError(f"as_of {value} is in the future: prices are recorded as read, with the day they were read")
    return value


class _Priced(_Model):
    """When and where the prices were read. `note` says how far to trust them (e.g. not verified on the page)."""

    as_of: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    source: str = Field(pattern=PRICE_SOURCE)
    note: str | None = Field(default=None, max_length=200)

    @field_validator("as_of")
    @classmethod
    def _real_date(cls, value: str) -> str:
        return _checked_date(value)


class TokenPrices(_Model):
    """USD per 1,000 tokens."""

    input_per_1k: float = Field(ge=0, allow_inf_nan=False)
    output_per_1k: float = Field(ge=0, allow_inf_nan=False)


class BedrockPricing(_Priced):
    """Bedrock's price per 1,000 input and output tokens, on demand (InvokeModel, which the small-file route uses)
    and for batch inference (CreateModelInvocationJob). None for batch means the price is unknown, not free."""

    on_demand: TokenPrices
    batch: TokenPrices | None = None


class SageMakerPricing(_Priced):
    """The on-demand price per instance-hour of Batch Transform, per instance type a pipeline uses.

    `records_per_second` is a planning assumption per instance (not a price): `batch-pipeline plan` turns records
    into instance-hours with it unless --records-per-second is given."""

    instance_hourly_usd: dict[
        Annotated[str, Field(pattern=INSTANCE_TYPE)], Annotated[float, Field(ge=0, allow_inf_nan=False)]
    ] = Field(min_length=1)
    records_per_second: dict[
        Annotated[str, Field(pattern=INSTANCE_TYPE)], Annotated[float, Field(gt=0, allow_inf_nan=False)]
    ] = {}


# ---------------------------------------------------------------- model catalog


class SageMakerArtifacts(_Model):
    """Where one region finds the container and weights (see docs/configuration.md, "Models in another region")."""

    image_uri: str = Field(min_length=1)
    # None for containers that fetch their weights themselves, e.g. the Hugging Face LLM (TGI)
    # container given HF_MODEL_ID; such a model needs network_isolation false.
    model_data_uri: str | None = Field(default=None, pattern=r"^s3://[^/]+/.+")
    environment: dict[str, str] = {}


class SageMakerModel(_Model):
    backend: Literal["sagemaker"]
    # "text-generation": a TGI-served LLM for real-time token streaming; endpoints only, no pipelines.
    task: Literal["text2text", "zero-shot", "text-generation"]
    jumpstart_model_id: str
    # JumpStart prepacked artifacts carry their code and weights, so the container needs no network.
    network_isolation: bool = True
    regions: dict[str, SageMakerArtifacts] = Field(min_length=1)
    # Batch Transform instance prices; without them manifests and plans carry no cost.
    pricing: SageMakerPricing | None = None

    @model_validator(mode="after")
    def _weights_reachable(self) -> SageMakerModel:
        without_data = sorted(region for region, artifacts in self.regions.items() if artifacts.model_data_uri is None)
        if without_data and self.task != "text-generation":
            raise ValueError(f"regions {without_data}: model_data_uri is required for a {self.task} model")
        if without_data and self.network_isolation:
            raise ValueError(
                f"regions {without_data} have no model_data_uri, so the container downloads its weights: "
                "set network_isolation to false"
            )
        return self

    def artifacts(self, region: str) -> SageMakerArtifacts:
        try:
            return self.regions[region]
        except KeyError:
            raise ConfigError(
                f"model {self.jumpstart_model_id!r} has no artifacts for region {region!r} "
                f"(configured: {', '.join(sorted(self.regions))}); add models.<name>.regions.{region}"
            ) from None


class BedrockModel(_Model):
    """A Bedrock model as the catalog knows it: the identifier every call uses, its request schema family, the
    limits from its model card, and, for an inference profile, the foundation model and Regions it routes to."""

    backend: Literal["bedrock"]
    # A foundation-model id (in-Region), a system-defined cross-Region inference profile id (us./eu./apac./
    # global. prefix) or an application inference profile ARN; CreateModelInvocationJob, InvokeModel and
    # Converse all take it as modelId.
    model_id: str = Field(min_length=1)
    # Decides the request schema that `bedrock` lines are checked against and that `prompt` lines become.
    family: BedrockFamily
    # From the model card: the largest max_tokens a request may ask for, and the context window in tokens.
    max_output_tokens: int | None = Field(default=None, ge=1)
    context_window: int | None = Field(default=None, ge=1)
    # For an inference profile: the foundation model it serves, and every Region it routes requests to (IAM
    # must allow the foundation model in each of them). Derived from a system profile id when omitted.
    foundation_model_id: str | None = None
    routes_to_regions: list[str] | None = None
    # Token prices; without them manifests and plans carry no cost.
    pricing: BedrockPricing | None = None
    # Whether bedrock-runtime CountTokens counts this model's input. The Bedrock User Guide lists the supported
    # models (https://docs.aws.amazon.com/bedrock/latest/userguide/count-tokens.html: Anthropic Claude models;
    # Amazon Nova is not among them), so the default is no and `batch-pipeline plan` uses its heuristic.
    count_tokens: bool = False

    @model_validator(mode="after")
    def _profile_complete(self) -> BedrockModel:
        if self.model_id.startswith("arn:") and not APPLICATION_PROFILE_ARN.match(self.model_id):
            raise ValueError(
                f"model_id {self.model_id!r}: an ARN must be an application inference profile ARN "
                "(arn:aws:bedrock:<region>:<account>:application-inference-profile/<id>)"
            )
        if self.is_profile:
            if not self.routes_to_regions:
                raise ValueError(
                    f"model_id {self.model_id!r} is an inference profile: set routes_to_regions to every "
                    "Region it routes to (see the profile in the Bedrock console or GetInferenceProfile)"
                )
            if self.model_id.startswith("arn:") and not self.foundation_model_id:
                raise ValueError(
                    f"model_id {self.model_id!r}: an application inference profile needs foundation_model_id"
                )
        elif self.routes_to_regions or self.foundation_model_id:
            raise ValueError("routes_to_regions and foundation_model_id apply to inference profiles only")
        for region in self.routes_to_regions or []:
            if not REGION.match(region):
                raise ValueError(f"routes_to_regions: {region!r} is not a Region code")
        return self

    @property
    def is_profile(self) -> bool:
        return self.model_id.startswith("arn:") or bool(PROFILE_PREFIX.match(self.model_id))

    @property
    def base_model_id(self) -> str:
        """The foundation model behind the identifier (the identifier itself for an in-Region model)."""
        if self.foundation_model_id:
            return self.foundation_model_id
        if PROFILE_PREFIX.match(self.model_id):
            return self.model_id.split(".", 1)[1]
        return self.model_id


ModelEntry = Annotated[SageMakerModel | BedrockModel, Field(discriminator="backend")]


# ---------------------------------------------------------------- pipelines


class SageMakerSettings(_Model):
    instance_type: str = Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    instance_count: int = Field(default=1, ge=1, le=100)
    batch_strategy: Literal["MultiRecord", "SingleRecord"] = "MultiRecord"
    max_payload_mb: int = Field(default=6, ge=0, le=100)
    max_concurrent_transforms: int = Field(default=0, ge=0)
    # Sent as the HYPER_PARAMS environment variable; when set, per-record parameters are ignored
    # by the JumpStart container, so null means "use the parameters on each line".
    hyper_params: dict[str, Any] | None = None
    # Extra shards beyond one per instance, so the slowest shard bounds the job less.
    shards_per_instance: int = Field(default=1, ge=1, le=64)
    # Sort records by length inside each shard, so mini-batches carry less padding.
    group_by_length: bool = False
    max_runtime_hours: int = Field(default=24, ge=1, le=72)


class BedrockSettings(_Model):
    """The five per-model batch quotas under Bedrock's names (see docs/bedrock.md, "Quotas"), and how to run."""

    # Minimum number of records per batch inference job.
    min_records_per_job: int = Field(default=100, ge=1)
    # Records per batch inference job, and records per input file per batch inference job (intake writes one
    # input file per job, so a job holds at most the smaller of the two).
    max_records_per_job: int = Field(default=50_000, ge=1)
    max_records_per_input_file: int = Field(default=50_000, ge=1)
    # Batch inference job size, and batch inference input file size.
    max_job_size_mb: int = Field(default=5 * 1024, ge=1)
    max_input_file_size_mb: int = Field(default=1024, ge=1)
    max_record_size_kb: int = Field(default=1024, ge=1)
    timeout_hours: int = Field(default=24, ge=24, le=168)
    # "InvokeModel": each modelInput is the model's native body; "Converse": a Converse request body, the same
    # for every model. None means InvokeModel (the only type `bedrock` lines written natively can mean).
    invocation_type: InvocationType | None = None
    # Below the minimum, run through InvokeModel under this cap, or reject with a report.
    small_file: Literal["on-demand", "reject"] = "on-demand"
    on_demand_concurrency: int = Field(default=4, ge=1, le=64)
    retry_failed_records: bool = False
    # Parameters for requests built from the portable `prompt` format.
    inference_params: dict[str, Any] = {"max_tokens": 512}

    @model_validator(mode="after")
    def _min_below_max(self) -> BedrockSettings:
        if self.min_records_per_job > self.records_per_job_limit:
            raise ValueError("min_records_per_job must not exceed max_records_per_job or max_records_per_input_file")
        return self

    @property
    def records_per_job_limit(self) -> int:
        return min(self.max_records_per_job, self.max_records_per_input_file)

    @property
    def bytes_per_job_limit(self) -> int:
        return min(self.max_job_size_mb, self.max_input_file_size_mb) * 1024 * 1024

    @property
    def converse(self) -> bool:
        return self.invocation_type == "Converse"


class Pipeline(_Model):
    model: str
    input_format: InputFormat
    evaluation: Literal["rouge", "classification", "none"] = "none"
    # "reject": one bad line rejects the file; "skip": bad lines are reported, counted and left out.
    on_invalid: Literal["reject", "skip"] = "reject"
    max_records: int = Field(default=1_000_000, ge=1)
    max_errors_reported: int = Field(default=100, ge=1, le=10_000)
    # For `prompt` lines on a zero-shot model, which carry no labels of their own.
    candidate_labels: list[str] | None = None
    sagemaker: SageMakerSettings | None = None
    bedrock: BedrockSettings | None = None


class EndpointConfig(_Model):
    model: str
    instance_type: str = Field(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    instance_count: int = Field(default=1, ge=1)
    # Autoscaling (target tracking on SageMakerVariantInvocationsPerInstance, per instance per
    # minute) between instance_count and max_instance_count; both fields or neither.
    max_instance_count: int | None = Field(default=None, ge=1)
    invocations_per_instance: int | None = Field(default=None, ge=1)
    scale_in_cooldown_seconds: int = Field(default=300, ge=0, le=3600)
    scale_out_cooldown_seconds: int = Field(default=60, ge=0, le=3600)
    # Requests and responses to s3://<output-bucket>/datacapture/<endpoint>/.
    data_capture: bool = False
    data_capture_percent: int = Field(default=100, ge=1, le=100)
    # Large models (TGI downloading 7B weights) need longer than the default to pass the health check.
    startup_health_check_timeout_seconds: int | None = Field(default=None, ge=60, le=3600)

    @model_validator(mode="after")
    def _autoscaling_complete(self) -> EndpointConfig:
        if (self.max_instance_count is None) != (self.invocations_per_instance is None):
            raise ValueError("autoscaling needs both max_instance_count and invocations_per_instance")
        if self.max_instance_count is not None and self.max_instance_count < self.instance_count:
            raise ValueError("max_instance_count must not be below instance_count")
        return self


class AppConfig(_Model):
    encryption: Literal["kms", "s3"] = "kms"
    log_retention_days: Literal[1, 3, 7, 14, 30, 60, 90, 180, 365, 731, 1827, 3653] = 30
    notification_email: str | None = None
    # Cap on the jobs one run has in flight: the Map state's MaxConcurrency.
    max_concurrent_jobs_per_run: int = Field(default=4, ge=1, le=40)
    models: dict[str, ModelEntry]
    pipelines: dict[str, Pipeline] = Field(min_length=1)
    endpoints: dict[str, EndpointConfig] = {}

    @model_validator(mode="after")
    def _cross_references(self) -> AppConfig:
        problems: list[str] = []
        for name, pipeline in self.pipelines.items():
            where = f"pipelines.{name}"
            if not PIPELINE_NAME.match(name):
                problems.append(f"{where}: name must match {PIPELINE_NAME.pattern} (it is an S3 prefix)")
            model = self.models.get(pipeline.model)
            if model is None:
                problems.append(f"{where}.model: unknown model {pipeline.model!r}; known: {sorted(self.models)}")
                continue
            problems += _check_pipeline_backend(where, pipeline, model)
        for name, endpoint in self.endpoints.items():
            if not ENDPOINT_NAME.match(name):
                problems.append(
                    f"endpoints.{name}: name must match {ENDPOINT_NAME.pattern} (it names the SageMaker endpoint)"
                )
            model = self.models.get(endpoint.model)
            if not isinstance(model, SageMakerModel):
                problems.append(f"endpoints.{name}.model: {endpoint.model!r} is not a SageMaker catalog model")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def backend_of(self, pipeline: str) -> Backend:
        return self.models[self.pipelines[pipeline].model].backend


def _check_pipeline_backend(where: str, pipeline: Pipeline, model: SageMakerModel | BedrockModel) -> list[str]:
    if model.backend == "sagemaker" and model.task == "text-generation":
        return [f"{where}.model: {pipeline.model!r} is a text-generation model, served by real-time endpoints only"]
    if model.backend == "sagemaker":
        return _check_sagemaker_pipeline(where, pipeline, model)
    return _check_bedrock_pipeline(where, pipeline, model)


def _check_sagemaker_pipeline(where: str, pipeline: Pipeline, model: SageMakerModel) -> list[str]:
    problems = []
    if pipeline.sagemaker is None:
        problems.append(f"{where}.sagemaker: required for SageMaker model {pipeline.model!r}")
    if pipeline.bedrock is not None:
        problems.append(f"{where}.bedrock: not allowed for SageMaker model {pipeline.model!r}")
    native = {"text2text": "jumpstart-text2text", "zero-shot": "zero-shot"}[model.task]
    if pipeline.input_format not in (native, "prompt"):
        problems.append(
            f"{where}.input_format: {pipeline.input_format!r} does not fit a {model.task} model; "
            f"use {native!r} or 'prompt'"
        )
    if model.task == "zero-shot" and pipeline.input_format == "prompt" and not pipeline.candidate_labels:
        problems.append(f"{where}.candidate_labels: required for 'prompt' lines on a zero-shot model")
    instance_type = pipeline.sagemaker.instance_type if pipeline.sagemaker is not None else None
    if model.pricing is not None and instance_type and instance_type not in model.pricing.instance_hourly_usd:
        problems.append(
            f"{where}.sagemaker.instance_type: {instance_type} has no price in "
            f"models.{pipeline.model}.pricing.instance_hourly_usd (priced: "
            f"{', '.join(sorted(model.pricing.instance_hourly_usd))})"
        )
    return problems


def _check_bedrock_pipeline(where: str, pipeline: Pipeline, model: BedrockModel) -> list[str]:
    problems = []
    if pipeline.bedrock is None:
        problems.append(f"{where}.bedrock: required for Bedrock model {pipeline.model!r}")
    if pipeline.sagemaker is not None:
        problems.append(f"{where}.sagemaker: not allowed for Bedrock model {pipeline.model!r}")
    if pipeline.input_format not in ("bedrock", "prompt", "messages"):
        problems.append(
            f"{where}.input_format: {pipeline.input_format!r} does not fit Bedrock; "
            "use 'bedrock', 'prompt' or 'messages'"
        )
    converse = pipeline.bedrock is not None and pipeline.bedrock.converse
    if pipeline.input_format == "messages" and not converse:
        problems.append(f"{where}.bedrock.invocation_type: 'messages' lines become Converse bodies; set 'Converse'")
    params = pipeline.bedrock.inference_params if pipeline.bedrock is not None else {}
    limit = model.max_output_tokens
    for name in ("max_tokens", "max_new_tokens"):
        value = params.get(name)
        if limit is not None and isinstance(value, int) and value > limit:
            problems.append(
                f"{where}.bedrock.inference_params.{name}: {value} is above the model's maximum "
                f"output of {limit} tokens (models.{pipeline.model}.max_output_tokens)"
            )
    return problems


def _format_errors(error: ValidationError, root: str) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in (root, *item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{key}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_app_config(raw: Any) -> AppConfig:
    """Validate the `batch-pipeline` context object; raise ConfigError naming each bad key."""
    if raw is None:
        raise ConfigError(f"invalid configuration: context key {CONTEXT_KEY!r} is missing from cdk.json")
    try:
        return AppConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_errors(error, CONTEXT_KEY)) from None
