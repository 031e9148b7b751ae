"""Local EventBridge delivery (batch_pipeline_local.emulator.events): asynchronous like EventBridge's, and a target
that raises fails the session that caused it instead of leaving a warning behind."""

from __future__ import annotations

import threading

import pytest

from batch_pipeline_local.emulator.events import EventDeliveryError, LocalEventBus

TEMPLATE = {
    "Resources": {
        "SagemakerJobEnded": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "EventPattern": {
                    "source": ["aws.sagemaker"],
                    "detail-type": ["SageMaker Transform Job State Change"],
                    "detail": {
                        "TransformJobName": [{"prefix": "llmbp-"}],
                        "TransformJobStatus": ["Completed", "Failed", "Stopped"],
                    },
                },
                "Targets": [{"Arn": {"Fn::GetAtt": ["JobEventsHandler", "Arn"]}, "Id": "Target0"}],
            },
        },
    }
}


def event(name: str, status: str) -> dict:
    return {
        "id": f"{name}-{status}",
        "source": "aws.sagemaker",
        "detail-type": "SageMaker Transform Job State Change",
        "detail": {"TransformJobName": name, "TransformJobStatus": status},
    }


def test_publish_delivers_matching_events_on_another_thread():
    threads: list[str] = []
    bus = LocalEventBus(TEMPLATE, lambda function, e: threads.append(threading.current_thread().name) or "ok")
    bus.publish(event("llmbp-r-0", "InProgress"))  # not an ended state: the rule does not match
    bus.publish(event("llmbp-r-0", "Completed"))
    bus.drain()
    bus.raise_failures()
    assert [(rule, e["detail"]["TransformJobStatus"], result) for rule, e, result in bus.delivered] == [
        ("SagemakerJobEnded", "Completed", "ok")
    ]
    assert threads and threads[0] != threading.current_thread().name


def test_a_target_that_raises_is_raised_to_the_runner_once_with_its_traceback():
    def failing(function: str, e: dict) -> None:
        raise PermissionError("AccessDenied: s3:GetObject on job-tokens/llmbp-r-0.json")

    bus = LocalEventBus(TEMPLATE, failing)
    bus.publish(event("llmbp-r-0", "Failed"))
    bus.drain()
    with pytest.raises(EventDeliveryError) as raised:
        bus.raise_failures()
    message = str(raised.value)
    assert "llmbp-r-0 (Failed) matched rule SagemakerJobEnded" in message and "JobEventsHandler raised" in message
    assert "PermissionError: AccessDenied" in message and "Traceback" in message
    bus.raise_failures()  # reported once: the next check starts clean
