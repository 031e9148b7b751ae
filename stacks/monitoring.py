"""Operations: a dashboard for runs and alarms that notify the run-events topic.

Alarms: any failed execution, any message in the functions' dead-letter queue (an upload that
never reached intake), and any error of each function.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .functions import METRICS_NAMESPACE, SERVICE_NAME


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.StateMachine,
        functions: list[lambda_.Function],
        dead_letter_queue: sqs.IQueue,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        notify = actions.SnsAction(topic)
        five_minutes = cdk.Duration.minutes(5)

        self.alarms: list[cloudwatch.Alarm] = []
        failed = state_machine.metric_failed(period=five_minutes, statistic="Sum")
        self._alarm("ExecutionsFailed", failed, "A run's execution failed; see its failure manifest", notify)
        timed_out = state_machine.metric_timed_out(period=five_minutes, statistic="Sum")
        self._alarm("ExecutionsTimedOut", timed_out, "A run's execution timed out", notify)
        dlq = dead_letter_queue.metric_approximate_number_of_messages_visible(period=five_minutes, statistic="Maximum")
        self._alarm(
            "DeadLetters",
            dlq,
            "An event or invocation landed in the dead-letter queue: an upload may not "
            "have been processed; inspect and redrive the queue",
            notify,
        )
        for fn in functions:
            self._alarm(
                f"Errors{fn.node.id}",
                fn.metric_errors(period=five_minutes, statistic="Sum"),
                f"{fn.node.id} raised errors",
                notify,
            )

        def custom(name: str, statistic: str = "Sum", dimensions: dict[str, str] | None = None) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=name,
                statistic=statistic,
                period=cdk.Duration.hours(1),
                dimensions_map={"service": SERVICE_NAME, **(dimensions or {})},
            )

        self.dashboard = cloudwatch.Dashboard(
            self, "RunsDashboard", dashboard_name=f"{cdk.Stack.of(self).stack_name}-runs"
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Executions",
                width=12,
                left=[
                    state_machine.metric_started(period=five_minutes),
                    state_machine.metric_succeeded(period=five_minutes),
                    failed,
                    timed_out,
                ],
            ),
            cloudwatch.GraphWidget(
                title="Records",
                width=12,
                left=[
                    custom("RecordsValid"),
                    custom("RecordsRejected"),
                    custom("RecordsSucceeded"),
                    custom("RecordsFailed"),
                ],
            ),
        )
        # Deferred submissions are jobs queued behind a quota (Bedrock concurrent jobs, SageMaker instances).
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Backend jobs",
                width=24,
                left=[
                    custom("JobSubmissions"),
                    custom("JobSubmissionsDeferred"),
                    custom("JobsSucceeded"),
                    custom("JobsPartial"),
                    custom("JobsFailed"),
                    custom("JobsStopped"),
                ],
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Function errors", width=12, left=[fn.metric_errors(period=five_minutes) for fn in functions]
            ),
            cloudwatch.GraphWidget(title="Dead letters", width=6, left=[dlq]),
            cloudwatch.AlarmStatusWidget(title="Alarms", width=6, alarms=self.alarms),
        )

    def _alarm(self, name: str, metric: cloudwatch.IMetric, description: str, action: actions.SnsAction) -> None:
        alarm = cloudwatch.Alarm(
            self,
            name,
            metric=metric,
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(action)
        self.alarms.append(alarm)
