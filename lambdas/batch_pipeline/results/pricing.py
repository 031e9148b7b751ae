"""What a run costs, from the catalog's prices: the actual cost (manifest) and the planned one (`batch-pipeline plan`).

- Bedrock bills tokens: input and output tokens times the price per 1,000 of the route the records took, batch
  inference (CreateModelInvocationJob) or on demand (InvokeModel, the route of a file under the per-job minimum).
- SageMaker Batch Transform (the "batch" route) bills instance time: instance-hours times the instance type's hourly
  price. The actual instance-hours are each transform job's TransformEndTime - TransformStartTime times its instance
  count, as DescribeTransformJob reports them (job control records them on the job as `started_at` / `ended_at`).

Prices are plain data from the catalog (config.RuntimePricing), with the day they were read and their source; every
cost names both, so a stale price is visible where the number is used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from batch_pipeline.config.app import TokenPrices
from batch_pipeline.config.runtime import RuntimePricing
from batch_pipeline.contracts import Job, Route

ROUTES: tuple[Route, Route] = ("batch", "on-demand")
USD_DECIMALS = 6


def _usd(value: float) -> float:
    return round(value, USD_DECIMALS)


def _price(value: float) -> str:
    """A price as people write it (0.00003, not 3e-05)."""
    return f"{value:.10f}".rstrip("0").rstrip(".")


def token_prices(pricing: RuntimePricing, route: Route) -> TokenPrices | None:
    return pricing.batch if route == "batch" else pricing.on_demand


def token_cost(prices: TokenPrices, input_tokens: int, output_tokens: int) -> tuple[float, float]:
    """(input USD, output USD) for token counts at prices per 1,000 tokens."""
    return input_tokens / 1000 * prices.input_per_1k, output_tokens / 1000 * prices.output_per_1k


def bedrock_route(jobs: list[Job]) -> Route:
    """The route a Bedrock run took: on demand when every job ran through InvokeModel, else batch."""
    routes = {job.route for job in jobs}
    return "on-demand" if routes == {"on-demand"} else "batch"


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def instance_seconds(jobs: list[Job], instance_count: int) -> tuple[float, list[str]]:
    """Instance-seconds summed over transform jobs (end - start, times instances), and the jobs with no times."""
    total = 0.0
    unknown = []
    for job in jobs:
        started, ended = _parse_time(job.started_at), _parse_time(job.ended_at)
        if started is None or ended is None:
            if job.arn:  # a job never submitted ran no instance
                unknown.append(str(job.name))
            continue
        total += max(0.0, (ended - started).total_seconds()) * instance_count
    return total, unknown


def _cost(
    usd_in: float,
    usd_out: float,
    instance_usd: float | None,
    route: Route,
    model: str,
    pricing: RuntimePricing,
    basis: str,
) -> dict[str, Any]:
    return {
        "usd": _usd(usd_in + usd_out + (instance_usd or 0.0)),
        "input_usd": _usd(usd_in),
        "output_usd": _usd(usd_out),
        "instance_usd": None if instance_usd is None else _usd(instance_usd),
        "route": route,
        "model": model,
        "prices_as_of": pricing.as_of,
        "source": pricing.source,
        "basis": basis,
    }


def bedrock_run_cost(
    pricing: RuntimePricing, model: str, jobs: list[Job], input_tokens: int, output_tokens: int
) -> dict[str, Any] | None:
    """The manifest's `cost` for a Bedrock run; None when the route's price is unknown."""
    route = bedrock_route(jobs)
    prices = token_prices(pricing, route)
    if prices is None:
        return None
    usd_in, usd_out = token_cost(prices, input_tokens, output_tokens)
    name = "batch inference" if route == "batch" else "on-demand (InvokeModel)"
    basis = (
        f"{input_tokens} input and {output_tokens} output tokens as the model reported them, at the {name} "
        f"price of {_price(prices.input_per_1k)} / {_price(prices.output_per_1k)} USD per 1,000 input / output "
        "tokens"
    )
    retried = [job.retry or {} for job in jobs]
    if any(retry.get("route") and retry["route"] != route for retry in retried):
        basis += "; the retry of failed records ran on another route and is priced at this one"
    return _cost(usd_in, usd_out, None, route, model, pricing, basis)


def sagemaker_run_cost(
    pricing: RuntimePricing, model: str, jobs: list[Job], instance_type: str, instance_count: int
) -> dict[str, Any] | None:
    """The manifest's `cost` for a SageMaker run; None when the instance type has no price."""
    hourly = pricing.hourly_usd(instance_type)
    if hourly is None:
        return None
    seconds, unknown = instance_seconds(jobs, instance_count)
    hours = seconds / 3600
    basis = (
        f"{hours:.4f} instance-hours (TransformEndTime - TransformStartTime of each transform job, times its "
        f"{instance_count} x {instance_type}) at {_price(hourly)} USD per instance-hour"
    )
    if unknown:
        basis += f"; no start/end time for {', '.join(unknown)}, so their time is not counted"
    return _cost(0.0, 0.0, hours * hourly, "batch", model, pricing, basis)


# ---------------------------------------------------------------- before the run


def planned_bedrock_cost(
    pricing: RuntimePricing, model: str, route: Route, input_tokens: int, output_tokens: int
) -> dict[str, Any]:
    """The cost of the run as planned: both routes priced, the planned one as the total."""
    by_route = {}
    for name in ROUTES:
        prices = token_prices(pricing, name)
        if prices is not None:
            usd_in, usd_out = token_cost(prices, input_tokens, output_tokens)
            by_route[name] = {
                "usd": _usd(usd_in + usd_out),
                "input_usd": _usd(usd_in),
                "output_usd": _usd(usd_out),
                "input_per_1k": prices.input_per_1k,
                "output_per_1k": prices.output_per_1k,
            }
    planned = by_route.get(route)
    result: dict[str, Any] = {
        "usd": planned["usd"] if planned else None,
        "input_usd": planned["input_usd"] if planned else None,
        "output_usd": planned["output_usd"] if planned else None,
        "instance_usd": None,
        "route": route,
        "model": model,
        "prices_as_of": pricing.as_of,
        "source": pricing.source,
        "by_route": by_route,
    }
    if planned is None:
        result["unpriced"] = f"the catalog has no {route} price for {model}"
    return result


def planned_sagemaker_cost(
    pricing: RuntimePricing,
    model: str,
    records: int,
    records_per_second: float,
    instance_type: str,
    instance_count: int,
) -> dict[str, Any]:
    """Instance-hours from a throughput: records / (records per second per instance x instances), on every
    instance for that long (intake balances the shards, so the instances finish together)."""
    wall_seconds = records / (records_per_second * instance_count)
    instance_hours = wall_seconds * instance_count / 3600
    hourly = pricing.hourly_usd(instance_type)
    instance_usd = None if hourly is None else _usd(instance_hours * hourly)
    result: dict[str, Any] = {
        "usd": instance_usd,
        "input_usd": 0.0,
        "output_usd": 0.0,
        "instance_usd": instance_usd,
        "route": "batch",
        "model": model,
        "prices_as_of": pricing.as_of,
        "source": pricing.source,
        "instance_hours": round(instance_hours, 4),
        "wall_clock_hours": round(wall_seconds / 3600, 4),
        "instance_type": instance_type,
        "instance_hourly_usd": hourly,
        "records_per_second_per_instance": records_per_second,
        "instance_count": instance_count,
    }
    if hourly is None:
        result["unpriced"] = f"the catalog has no hourly price for {instance_type} ({model})"
    return result
