"""dsl.ParallelFor over every kind of item source, nested loops, and fan-in with
dsl.Collected of a parameter output and of an artifact output.

Parameter: names: List[str] = ['x', 'y'].
A task inside a loop is recorded once per iteration as <task>.<index> (nested:
<task>.<outer index>.<inner index>); every task below succeeds, and so does the run.

With the defaults, the recorded outputs are:
  double.0 / double.1 / double.2 Output = 2 / 4 / 6
      (a raw list of ints [1, 2, 3]; double returns 2 * x)
  sum-values Output = 12
      (dsl.Collected(double.output): the step receives the list [2, 4, 6])
  add-quarter.0 / add-quarter.1 Output = 2.75 / 4.75
      (a raw list of dicts [{'b': 2.5, 'tag': 'p'}, {'b': 4.5, 'tag': 'q'}],
      the field item.b; add-quarter returns b + 0.25)
  upper.0 / upper.1 Output = X / Y
      (the list pipeline parameter names)
  make-list Output = [0,1,2,3]
  square.0 .. square.3: a Dataset artifact `out` each, holding the text 0 / 1 / 4 / 9
      (a loop over make-list's output with parallelism=2: at most two iterations at once)
  sum-files Output = 14
      (dsl.Collected(square.outputs['out']) given as dsl.Input[List[dsl.Dataset]]:
      0 + 1 + 4 + 9)
  pair.0.0 / pair.0.1 / pair.1.0 / pair.1.1 Output = 1-10 / 1-20 / 2-10 / 2-20
      (a loop over [1, 2] holding a loop over [10, 20])
  describe.0 / describe.1 Output = a:7 / b:2.5
      (a raw list of dicts mixing text and numbers, [{'label': 'a', 'size': 7},
      {'label': 'b', 'size': 2.5}]: the compiler types every field as STRING, and KFP's
      backend hands a number on as its text, written as the pipeline wrote it)

With --param 'names=["a", "b", "c"]': upper.0 / upper.1 / upper.2 = A / B / C; the rest
as with the defaults. With --param 'names=[]': no upper task runs; the run succeeds.
"""
from typing import List

from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def double(x: int) -> int:
    return 2 * x


@dsl.component(base_image=IMAGE)
def sum_values(values: List[int]) -> int:
    # int(): a runner that passes list items as JSON doubles (2.0) still sums to an int.
    return int(sum(values))


@dsl.component(base_image=IMAGE)
def add_quarter(b: float) -> float:
    return b + 0.25


@dsl.component(base_image=IMAGE)
def upper(s: str) -> str:
    return s.upper()


@dsl.component(base_image=IMAGE)
def make_list(n: int) -> List[int]:
    return list(range(n))


@dsl.component(base_image=IMAGE)
def square(x: int, out: dsl.Output[dsl.Dataset]):
    with open(out.path, 'w') as f:
        f.write(str(x * x))


@dsl.component(base_image=IMAGE)
def sum_files(files: dsl.Input[List[dsl.Dataset]]) -> int:
    total = 0
    for artifact in files:
        with open(artifact.path) as f:
            total += int(f.read())
    return total


@dsl.component(base_image=IMAGE)
def pair(a: int, b: int) -> str:
    return f'{a}-{b}'


@dsl.component(base_image=IMAGE)
def describe(label: str, size: str) -> str:
    return f'{label}:{size}'


@dsl.pipeline(name='loops')
def pipeline(names: List[str] = ['x', 'y']):
    with dsl.ParallelFor([1, 2, 3]) as x:
        doubled = double(x=x)
    sum_values(values=dsl.Collected(doubled.output))

    with dsl.ParallelFor([{'b': 2.5, 'tag': 'p'}, {'b': 4.5, 'tag': 'q'}]) as item:
        add_quarter(b=item.b)

    with dsl.ParallelFor(names) as name:
        upper(s=name)

    listing = make_list(n=4)
    with dsl.ParallelFor(listing.output, parallelism=2) as i:
        squared = square(x=i)
    sum_files(files=dsl.Collected(squared.outputs['out']))

    with dsl.ParallelFor([1, 2]) as a:
        with dsl.ParallelFor([10, 20]) as b:
            pair(a=a, b=b)

    with dsl.ParallelFor([{'label': 'a', 'size': 7}, {'label': 'b', 'size': 2.5}]) as row:
        describe(label=row.label, size=row.size)
