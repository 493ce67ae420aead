"""A loop whose iterations take long: for stopping a run while they run.

Parameter: seconds: int = 600.
Tasks: nap.0, nap.1, nap.2, one per item of [1, 2, 3], each `sh -c 'sleep "$0"' seconds`
(a container component; tests run it with `--runner process`). With the default the run
is stopped long before any iteration ends.
"""
from kfp import dsl

IMAGE = 'python:3.11'


@dsl.container_component
def nap(seconds: int, item: int):
    return dsl.ContainerSpec(
        image=IMAGE,
        command=['sh', '-c', 'sleep "$0"', seconds, item],
    )


@dsl.pipeline(name='slow-loop')
def pipeline(seconds: int = 600):
    with dsl.ParallelFor([1, 2, 3]) as item:
        nap(seconds=seconds, item=item)
