"""A chain of tasks downstream of a failing task, whose names sort against the chain's
order (after < middle < zfail), inside an exit handler; and a nested pipeline whose
parameters the parent leaves unset, one of them a list a loop runs over.

Tasks:
  zfail raises RuntimeError('deliberate'); middle runs after zfail; after runs after
  middle; report (the exit task) outputs status.state.
  sizes (a nested pipeline, inner(items: List[int] = [3, 4], label: str = 'n')) runs
  count(label, x) for each item: count.0 / count.1 Output = n=3 / n=4.
The run fails (zfail failed) and every task ends decided:
  zfail failed; middle and after skipped (upstream failed); report succeeded with
  report.Output = FAILED; count.0 / count.1 as above.
"""
from typing import List

from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def zfail():
    raise RuntimeError('deliberate')


@dsl.component(base_image=IMAGE)
def middle() -> str:
    return 'middle'


@dsl.component(base_image=IMAGE)
def after() -> str:
    return 'after'


@dsl.component(base_image=IMAGE)
def report(status: dsl.PipelineTaskFinalStatus) -> str:
    return status.state


@dsl.component(base_image=IMAGE)
def count(label: str, x: int) -> str:
    return f'{label}={x}'


@dsl.pipeline(name='sizes')
def sizes(items: List[int] = [3, 4], label: str = 'n'):
    with dsl.ParallelFor(items) as x:
        count(label=label, x=x)


@dsl.pipeline(name='failure-chain')
def pipeline():
    sizes()
    final = report()
    with dsl.ExitHandler(final):
        z = zfail()
        m = middle().after(z)
        after().after(m)
