"""dsl.ExitHandler around two tasks, an exit task that receives the final status
(dsl.PipelineTaskFinalStatus), and a task with .ignore_upstream_failure().

Parameter: fail: bool = False.
Tasks: work (returns done, or raises RuntimeError('asked to fail') when fail is true);
then-work (takes work's output, returns it with a "!"); cleanup (takes work's output
into an input whose default is 'nothing', runs after work whether or not work
succeeded, returns "cleaned <text>"); report (the exit task: outputs state =
status.state and has_error = status.error_message is not None, for the exit handler's
group exit-handler-1 holding work, then-work and cleanup).

Defaults (fail=false): the run succeeds; every task succeeds:
  work.Output = done
  then-work.Output = done!
  cleanup.Output = cleaned done
  report.state = COMPLETE, report.has_error = false
  (COMPLETE, FAILED, CANCELED: the states KFP's backend gives PipelineTaskFinalStatus;
  KFP's local runner says SUCCEEDED instead of COMPLETE)
--param fail=true: the run fails.
  work failed (one attempt; its error mentions "asked to fail")
  then-work did not run (its upstream failed)
  cleanup succeeded, Output = cleaned nothing (work produced no output, so the
  input's default is used)
  report succeeded (an exit task runs whatever happened):
    report.state = FAILED, report.has_error = true
"""
from typing import NamedTuple

from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def work(fail: bool) -> str:
    if fail:
        raise RuntimeError('asked to fail')
    return 'done'


@dsl.component(base_image=IMAGE)
def then_work(text: str) -> str:
    return text + '!'


@dsl.component(base_image=IMAGE)
def cleanup(text: str = 'nothing') -> str:
    return f'cleaned {text}'


@dsl.component(base_image=IMAGE)
def report(
    status: dsl.PipelineTaskFinalStatus,
) -> NamedTuple('Report', [('state', str), ('has_error', bool)]):
    return (status.state, status.error_message is not None)


@dsl.pipeline(name='exit-handler')
def pipeline(fail: bool = False):
    exit_task = report()
    with dsl.ExitHandler(exit_task):
        worked = work(fail=fail)
        then_work(text=worked.output)
        cleanup(text=worked.output).ignore_upstream_failure()
