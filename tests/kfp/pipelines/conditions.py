"""Conditions: dsl.If / dsl.Elif / dsl.Else on an upstream string output, a dsl.If nested
inside a branch, an integer comparison on an int pipeline parameter, a comparison on a
float pipeline parameter, and a dsl.OneOf fan-in of the three branches' outputs.

Parameters: word: str = 'heads', n: int = 3, rate: float = 0.25.
Tasks: flip (returns word); heads / tails / other (the If / Elif / Else branches on
flip's output, returning H / T / E); heads-big (an If on n > 2 nested in the heads
branch, returning big); many (an If on n > 2 at the top level, returning many); cheap
(an If on rate < 0.5, returning cheap); join (takes dsl.OneOf of the heads, tails and
other outputs, returning "got <value>"). A task whose condition is false does not run
and has no outputs; the run still succeeds.

Defaults (word=heads, n=3, rate=0.25):
  ran:     flip = heads, heads = H, heads-big = big, many = many, cheap = cheap,
           join = got H
  not run: tails, other
--param word=tails --param n=1 --param rate=0.75:
  ran:     flip = tails, tails = T, join = got T
  not run: heads, heads-big, other, many, cheap
--param word=edge --param n=5:
  ran:     flip = edge, other = E, many = many, cheap = cheap, join = got E
  not run: heads, heads-big, tails
--param word=heads --param n=2 --param rate=0.5 (both comparisons are strict):
  ran:     flip = heads, heads = H, join = got H
  not run: heads-big, tails, other, many, cheap
(every value above is the task's Output)
"""
from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def flip(word: str) -> str:
    return word


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
def other() -> str:
    return 'E'


@dsl.component(base_image=IMAGE)
def many() -> str:
    return 'many'


@dsl.component(base_image=IMAGE)
def cheap() -> str:
    return 'cheap'


@dsl.component(base_image=IMAGE)
def join(value: str) -> str:
    return f'got {value}'


@dsl.pipeline(name='conditions')
def pipeline(word: str = 'heads', n: int = 3, rate: float = 0.25):
    flipped = flip(word=word)
    with dsl.If(flipped.output == 'heads'):
        h = heads()
        with dsl.If(n > 2):
            heads_big()
    with dsl.Elif(flipped.output == 'tails'):
        t = tails()
    with dsl.Else():
        o = other()
    with dsl.If(n > 2):
        many()
    with dsl.If(rate < 0.5):
        cheap()
    join(value=dsl.OneOf(h.output, t.output, o.output))
