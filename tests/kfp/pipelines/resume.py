"""Resuming a compiled pipeline: a loop of steps that succeed, their sum, a gate that
fails until a flag file exists, and a step after it. Caching is off on every task, so
what a resumed run takes from the failed one it takes as a resume, not from the cache.

Parameters: flag: str (a host path; the gate succeeds once it exists).
Tasks: square (for each of [1, 2, 3]) returns x * x; total sums them (fan-in);
gate(flag, value) raises RuntimeError('no flag') unless the flag exists, else returns
value; last(value) returns value + 1.
A run without the flag: square.0-2 and total succeed, gate fails, last is skipped.
With the flag, `sluice runs resume RUN`: square.0-2 and total are taken from RUN
(cached_from RUN/<task>), gate and last run; last.Output = 15.
"""
from typing import List

from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def square(x: int) -> int:
    return x * x


@dsl.component(base_image=IMAGE)
def total(values: List[int]) -> int:
    return sum(values)


@dsl.component(base_image=IMAGE)
def gate(flag: str, value: int) -> int:
    import os
    if not os.path.exists(flag):
        raise RuntimeError('no flag')
    return value


@dsl.component(base_image=IMAGE)
def last(value: int) -> int:
    return value + 1


@dsl.pipeline(name='resume')
def pipeline(flag: str):
    with dsl.ParallelFor([1, 2, 3]) as x:
        squared = square(x=x).set_caching_options(False)
    summed = total(values=dsl.Collected(squared.output)).set_caching_options(False)
    gated = gate(flag=flag, value=summed.output).set_caching_options(False)
    last(value=gated.output).set_caching_options(False)
