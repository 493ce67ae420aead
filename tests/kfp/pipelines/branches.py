"""Conditions on values of every kind, with no dsl.OneOf (so the pipeline exports to Argo):
on a string output, on an int and a float pipeline parameter, on a bool output, nested,
and a step downstream of a branch that did not run.

Parameters: word: str = 'heads', n: int = 3, rate: float = 0.25.
Tasks, with the defaults (every value is the task's Output):
  flip = heads; is-small = true (rate < 0.5)
  heads = H             (flip.output == 'heads')
  heads-big = big       (nested: n > 2)
  tails                 not run (flip.output == 'tails')
  cheap = cheap         (rate < 0.5, a float parameter)
  small = small         (is-small.output == True, a bool output)
  after = after         (after flip; runs whatever the branches did)
With --param word=tails --param n=1 --param rate=0.75: tails = T, is-small = false, after =
after; heads, heads-big, cheap and small do not run.
"""
from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def flip(word: str) -> str:
    return word


@dsl.component(base_image=IMAGE)
def is_small(rate: float) -> bool:
    return rate < 0.5


@dsl.component(base_image=IMAGE)
def heads() -> str:
    return 'H'


@dsl.component(base_image=IMAGE)
def heads_big() -> str:
    return 'big'


@dsl.component(base_image=IMAGE)
def tails() -> str:
    return 'T'


@dsl.component(base_image=IMAGE)
def cheap() -> str:
    return 'cheap'


@dsl.component(base_image=IMAGE)
def small() -> str:
    return 'small'


@dsl.component(base_image=IMAGE)
def after(word: str) -> str:
    return 'after'


@dsl.pipeline(name='branches')
def pipeline(word: str = 'heads', n: int = 3, rate: float = 0.25):
    flipped = flip(word=word)
    with dsl.If(flipped.output == 'heads'):
        heads()
        with dsl.If(n > 2):
            heads_big()
    with dsl.If(flipped.output == 'tails'):
        tails()
    with dsl.If(rate < 0.5):
        cheap()
    smallness = is_small(rate=rate)
    with dsl.If(smallness.output == True):  # noqa: E712 (KFP's condition syntax)
        small()
    after(word=flipped.output)
