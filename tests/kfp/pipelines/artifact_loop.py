"""A ParallelFor over artifacts (the IR's artifactIterator): an inner pipeline collects
three Datasets from a loop, and the outer pipeline loops over that list.

A run succeeds and records make.0 / make.1 / make.2 (each a Dataset holding 1 / 2 / 3)
and read.0 / read.1 / read.2 with Output = 1 / 2 / 3, in the order of the list.
"""
from typing import List

from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def make(x: int, out: dsl.Output[dsl.Dataset]):
    with open(out.path, 'w') as f:
        f.write(str(x))


@dsl.component(base_image=IMAGE)
def read(data: dsl.Input[dsl.Dataset]) -> str:
    with open(data.path) as f:
        return f.read()


@dsl.pipeline(name='datasets')
def datasets() -> List[dsl.Dataset]:
    with dsl.ParallelFor([1, 2, 3]) as x:
        made = make(x=x)
    return dsl.Collected(made.outputs['out'])


@dsl.pipeline(name='artifact-loop')
def pipeline():
    listing = datasets()
    with dsl.ParallelFor(listing.output) as data:
        read(data=data)
