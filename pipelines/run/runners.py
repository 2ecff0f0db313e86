"""What the driver does about the Beam runner a stage runs on: the in-process runner when none is named, a job
service that must answer within `JOB_SERVICE_SECONDS` before anything is submitted, how long silent workers are
waited for, and a runner's failure turned into one line that names the cause and its fix (docs/cluster.md,
"When a runner fails")."""
from __future__ import annotations

import grpc
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions
from apache_beam.runners.runner import PipelineRunner

from judgemine.pipelines.run.progress import WorkersFailed

JOB_SERVICE_SECONDS = 10.0
SELF_WATCHING = ("DataflowRunner",)  # boots machines for minutes, and restarts its workers itself
PORTABLE = ("PortableRunner", "FlinkRunner", "SparkRunner")


class RunnerFailed(RuntimeError):
    """The runner could not run the stage: the message is the one line."""


def default_runner(options: PipelineOptions) -> PipelineRunner | None:
    """With no --runner, the in-process FnApiRunner, built as Beam's DirectRunner builds it for a batch pipeline.
    The DirectRunner itself first tries its Prism runner, which downloads a binary from GitHub (a run would reach
    the network on its own) or, offline, fails and falls back: ~65 ms a stage here."""
    if options.view_as(StandardOptions).runner:
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))


def runner_name(options: PipelineOptions) -> str:
    return str(options.view_as(StandardOptions).runner or "")


def watch_seconds(options: PipelineOptions, worker_timeout: float) -> float:
    """How long a stage's workers may stay silent before it fails (0: not watched): --worker-timeout, except on
    a runner that watches its own."""
    return 0.0 if runner_name(options).split(".")[-1] in SELF_WATCHING else worker_timeout


def _job_endpoint(options: PipelineOptions) -> str:
    endpoint = options.view_as(PortableOptions).job_endpoint or ""
    return endpoint if runner_name(options).split(".")[-1] in PORTABLE and endpoint not in ("", "embed") else ""


def check_job_service(options: PipelineOptions) -> None:
    """A job service named by --job_endpoint answers within JOB_SERVICE_SECONDS, or the stage fails before it
    starts (Beam would wait --job_server_timeout, five minutes by default)."""
    endpoint = _job_endpoint(options)
    if not endpoint:
        return
    channel = grpc.insecure_channel(endpoint)
    try:
        grpc.channel_ready_future(channel).result(timeout=JOB_SERVICE_SECONDS)
    except grpc.FutureTimeoutError:
        raise RunnerFailed(f"no Beam job service answered at {endpoint} (--job_endpoint) within "
                           f"{JOB_SERVICE_SECONDS:.0f} s: start it (python -m apache_beam.runners.portability."
                           "local_job_service_main --port PORT, or the Flink or Spark job server) or fix the "
                           "address") from None
    finally:
        channel.close()


def ended(error: BaseException) -> BaseException:
    """A runner's failure as one line naming its cause, or the error itself when it is already plain (an
    interrupt, a stage's own error, WorkersFailed)."""
    if isinstance(error, WorkersFailed) or not isinstance(error, Exception):
        return error
    if isinstance(error, grpc.RpcError):
        return RunnerFailed(f"the Beam job service stopped answering ({error.code().name}): it was stopped or "
                            "its machine went away; the job is lost, rerun the command to resume from what is "
                            "committed")
    text = str(error)
    if "Channel closed prematurely" in text:  # the job service saw a worker's data connection drop
        return RunnerFailed("a worker's connection closed mid-stage (the process was killed, ran out of memory, or "
                            "its machine went away): rerun the command to resume from what is committed")
    for module in ("judgemine", "apache_beam"):
        if f"No module named '{module}" in text:
            return RunnerFailed(f"a worker could not import {module}: install it where the workers run (the "
                                "worker image, or --setup_file ./setup.py for judgemine)")
    return error
