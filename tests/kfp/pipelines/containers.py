"""Container components only (@dsl.container_component), all on the image
sluice-samples/probe:0.1.0: a FROM-scratch image holding the static binary `probe`
(no shell), so every command is `probe <subcommand> ...`.

Parameters: source: str (required: the absolute path of a host file; the test writes
the text "payload" into it, with no newline); memory: str = '128M'.
Tasks (every one succeeds, and so does the run):
  message     probe write <out> msg=<text>!   (a dsl.ConcatPlaceholder into a
              dsl.OutputPath(str)); out = msg=hello!
  importer    dsl.importer(artifact_uri=source, artifact_class=dsl.Dataset,
              reimport=False): imports the file as the Dataset artifact `artifact`
  copy        probe copy <src.path> <dst.path>: its Dataset `dst` holds the source
              file's bytes (payload); runs with .set_cpu_limit('1') and
              .set_memory_limit('256M')
  read-back   probe copy <src.path> <text>: copies copy's dst into the output
              parameter text = payload
  optional    extra='yes' given: a dsl.IfPresentPlaceholder takes its then branch,
              out = with:yes
  optional-2  extra not given: the else branch, out = without
  show-env    probe env GREETING, with .set_env_variable('GREETING', 'hi from the
              pipeline'): prints that text (see `sluice logs <run> show-env`)
  message-2   as message, with .set_memory_limit(memory): the pipeline parameter
              decides the limit when the task runs (128M by default)
  quantity    probe write <out> 96M
  message-3   as message, with .set_memory_limit(quantity's out): an upstream output
              decides the limit (96M)
"""
from typing import Optional

from kfp import dsl

IMAGE = 'sluice-samples/probe:0.1.0'


@dsl.container_component
def message(text: str, out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image=IMAGE,
        command=['probe', 'write', out, dsl.ConcatPlaceholder(['msg=', text, '!'])],
    )


@dsl.container_component
def copy(src: dsl.Input[dsl.Dataset], dst: dsl.Output[dsl.Dataset]):
    return dsl.ContainerSpec(image=IMAGE, command=['probe'], args=['copy', src.path, dst.path])


@dsl.container_component
def read_back(src: dsl.Input[dsl.Dataset], text: dsl.OutputPath(str)):
    return dsl.ContainerSpec(image=IMAGE, command=['probe', 'copy', src.path, text])


@dsl.container_component
def optional(out: dsl.OutputPath(str), extra: Optional[str] = None):
    return dsl.ContainerSpec(
        image=IMAGE,
        command=['probe', 'write', out],
        args=[
            dsl.IfPresentPlaceholder(
                input_name='extra',
                then=[dsl.ConcatPlaceholder(['with:', extra])],
                else_=['without'],
            )
        ],
    )


@dsl.container_component
def show_env():
    return dsl.ContainerSpec(image=IMAGE, command=['probe', 'env', 'GREETING'])


@dsl.container_component
def quantity(out: dsl.OutputPath(str)):
    return dsl.ContainerSpec(image=IMAGE, command=['probe', 'write', out, '96M'])


@dsl.pipeline(name='containers')
def pipeline(source: str, memory: str = '128M'):
    message(text='hello')
    imported = dsl.importer(artifact_uri=source, artifact_class=dsl.Dataset, reimport=False)
    copied = copy(src=imported.output).set_cpu_limit('1').set_memory_limit('256M')
    read_back(src=copied.outputs['dst'])
    optional(extra='yes')
    optional()
    show_env().set_env_variable('GREETING', 'hi from the pipeline')
    message(text='by parameter').set_memory_limit(memory)
    limit = quantity()
    message(text='by output').set_memory_limit(limit.outputs['out'])
