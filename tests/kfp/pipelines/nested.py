"""A @dsl.pipeline used as a component inside another pipeline, its output consumed
downstream by the outer pipeline.

Inner pipeline `inner` (x: int) -> int: double(x) then inc(double's output); returns
inc's output. Outer pipeline `nested` (x: int = 2) -> int: a task `inner` running the
inner pipeline with x, then show(inner's output); it returns inner's output, so the run
records the pipeline output Output = 5 (21 with x=10).

Executor tasks, recorded under their own names (they are unique across both pipelines):
with the defaults the run succeeds and records
  double.Output = 4
  inc.Output = 5
  show.Output = inner gave 5
With --param x=10: double = 20, inc = 21, show = inner gave 21.
"""
from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def double(x: int) -> int:
    return 2 * x


@dsl.component(base_image=IMAGE)
def inc(x: int) -> int:
    return x + 1


@dsl.component(base_image=IMAGE)
def show(x: int) -> str:
    return f'inner gave {x}'


@dsl.pipeline(name='inner')
def inner(x: int) -> int:
    doubled = double(x=x)
    return inc(x=doubled.output).output


@dsl.pipeline(name='nested')
def pipeline(x: int = 2) -> int:
    result = inner(x=x)
    show(x=result.output)
    return result.output
