"""Artifact URIs outlive the tasks that were given them.

`make` writes a Dataset and returns its own output's `.uri`; `where` returns the `.uri`
of the Dataset it was given. Each URI is imported by a `dsl.importer` after both tasks
have ended, and read back: read-made.Output and read-given.Output are both `made`. Run
twice, the second run reuses make and where from the cache, and the URIs they recorded
(the first run's) still import.
"""
from kfp import dsl

IMAGE = 'python:3.11'


@dsl.component(base_image=IMAGE)
def make(data: dsl.Output[dsl.Dataset]) -> str:
    with open(data.path, 'w') as f:
        f.write('made')
    return data.uri


@dsl.component(base_image=IMAGE)
def where(data: dsl.Input[dsl.Dataset]) -> str:
    return data.uri


@dsl.component(base_image=IMAGE)
def read(data: dsl.Input[dsl.Dataset]) -> str:
    with open(data.path) as f:
        return f.read()


@dsl.pipeline(name='uris')
def pipeline():
    made = make()
    given = where(data=made.outputs['data'])
    own = dsl.importer(artifact_uri=made.outputs['Output'], artifact_class=dsl.Dataset)
    own.set_display_name('import-made')
    passed = dsl.importer(artifact_uri=given.output, artifact_class=dsl.Dataset)
    passed.set_display_name('import-given')
    read(data=own.output).set_display_name('read-made')
    read(data=passed.output).set_display_name('read-given')
