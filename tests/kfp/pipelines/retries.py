"""Retries with a backoff policy (.set_retry), a step that succeeds on its third
attempt, and one that never does.

Parameters: counter_dir: str (required: an existing, empty host directory; the steps
run on the host, so they can write there), always: bool = False.
Tasks: flaky (in the Else branch of always == True) counts its attempts by creating
the files attempt-1, attempt-2, ... in counter_dir, raises RuntimeError('attempt N of
3 fails') until attempt succeed_on = 3, and then returns the attempt number; it has
.set_retry(num_retries=3, backoff_duration='0s', backoff_factor=1.0), so up to 4
attempts. always-fails (in the If branch) raises RuntimeError('always fails') on every
attempt; it has .set_retry(num_retries=1, backoff_duration='0s'), so 2 attempts.

--param counter_dir=DIR: the run succeeds.
  flaky succeeded on its 3rd attempt (attempts 1 and 2 failed), Output = 3;
  DIR holds exactly attempt-1, attempt-2 and attempt-3.
  always-fails did not run (its condition is false).
--param counter_dir=DIR --param always=true: the run fails.
  always-fails failed after 2 attempts (its error mentions "always fails").
  flaky did not run; DIR stays empty.
"""
from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def flaky(counter_dir: str, succeed_on: int) -> int:
    import os
    attempt = 1 + sum(1 for name in os.listdir(counter_dir) if name.startswith('attempt-'))
    with open(os.path.join(counter_dir, f'attempt-{attempt}'), 'w') as f:
        f.write(str(attempt))
    if attempt < succeed_on:
        raise RuntimeError(f'attempt {attempt} of {succeed_on} fails')
    return attempt


@dsl.component(base_image=IMAGE)
def always_fails():
    raise RuntimeError('always fails')


@dsl.pipeline(name='retries')
def pipeline(counter_dir: str, always: bool = False):
    with dsl.If(always == True):  # noqa: E712 (a pipeline channel, not a Python bool)
        always_fails().set_retry(num_retries=1, backoff_duration='0s')
    with dsl.Else():
        flaky(counter_dir=counter_dir, succeed_on=3).set_retry(
            num_retries=3, backoff_duration='0s', backoff_factor=1.0)
