"""Container components as `sluice run --runner process` runs them, on the host.

Tasks (every one succeeds, and so does the run):
  pick          command [IfPresent(tool, then=[tool], else=['sh'])] with args
                ['-c', 'printf chosen > "$0"', out]: the program is known only once the
                placeholder is expanded; out = chosen (through sh)
  pick-2        the same with tool='bash'; out = chosen (through bash)
  accelerated   sh printing nothing, with .set_accelerator_type('nvidia.com/gpu'),
                .set_accelerator_limit(1) and .set_memory_limit('64M'): a process has
                none of these, and the run says so in one note each
"""
from typing import Optional

from kfp import dsl

IMAGE = 'python:3.11'


@dsl.container_component
def pick(out: dsl.OutputPath(str), tool: Optional[str] = None):
    return dsl.ContainerSpec(
        image=IMAGE,
        command=[dsl.IfPresentPlaceholder(input_name='tool', then=[tool], else_=['sh'])],
        args=['-c', 'printf chosen > "$0"', out],
    )


@dsl.container_component
def accelerated():
    return dsl.ContainerSpec(image=IMAGE, command=['sh', '-c', 'true'])


@dsl.pipeline(name='process-runner')
def pipeline():
    pick()
    pick(tool='bash')
    (accelerated()
     .set_accelerator_type('nvidia.com/gpu')
     .set_accelerator_limit(1)
     .set_memory_limit('64M'))
