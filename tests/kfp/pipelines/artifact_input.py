"""A pipeline whose input is an artifact: `data`, a Dataset given as a file.

With --param data=FILE (FILE holding the three lines a, b, c), a run succeeds and
records count-lines.Output = 3.
"""
from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def count_lines(data: dsl.Input[dsl.Dataset]) -> int:
    with open(data.path) as f:
        return len(f.read().split())


@dsl.pipeline(name='artifact-input')
def pipeline(data: dsl.Input[dsl.Dataset]):
    count_lines(data=data)
